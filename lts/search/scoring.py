"""Computing a search's proxy objectives (ZeroLM, synflow, ...) for each candidate.

The values come from :func:`lts.proxies.compute.score` under one fixed :class:`ProxySettings` per
run (recorded in its settings), so a value cached for an architecture by one run is the value any
other run with those settings would compute. A proxy that fails on a candidate (an exception, a
non-finite value) is recorded as data -- value None and the error -- and the candidate counts as
infeasible, instead of stopping the search.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

from lts.space.config import Config

Score = tuple[float | None, str | None, float]  # (value, error, seconds)


def settings_key(settings: Mapping[str, Any]) -> str:
    """The cache key of a proxy setting (its canonical JSON)."""
    return json.dumps(dict(settings), sort_keys=True)


def default_proxy_settings() -> dict[str, Any]:
    from lts.proxies.compute import ProxySettings

    return ProxySettings().to_dict()


class ProxyScorer:
    """Scores candidates on the registered proxies ``names`` (lazy: torch loads at the first score)."""

    def __init__(self, names: Sequence[str], settings: Mapping[str, Any]) -> None:
        self.names = tuple(names)
        self.settings = dict(settings)
        self.key = settings_key(self.settings)
        self._specs: list[Any] | None = None
        self._tokens: Any = None

    def _prepare(self) -> None:
        from lts.proxies.compute import ProxySettings
        from lts.proxies.registry import get

        self._specs = [get(n) for n in self.names]
        self._proxy_settings = ProxySettings(**self.settings)
        if any(s.needs_data for s in self._specs):
            from lts.proxies.tokens import corpus_batch

            ps = self._proxy_settings
            self._tokens = corpus_batch(ps.batch, ps.seq_len, ps.seed).tokens

    def score(self, cfg: Config) -> dict[str, Score]:
        if not self.names:
            return {}
        if self._specs is None:
            self._prepare()
        from lts.proxies.compute import score

        try:
            scored = score(cfg, self._specs, self._tokens, self._proxy_settings)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - a failure is this candidate's data, not the search's end
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return {n: (None, error, 0.0) for n in self.names}
        out: dict[str, Score] = {}
        for n in self.names:
            v = scored.values.get(n)
            ok = v is not None and math.isfinite(v)
            out[n] = (float(v) if ok else None, None if ok else f"{n} is not finite ({v})", scored.seconds.get(n, 0.0))
        return out
