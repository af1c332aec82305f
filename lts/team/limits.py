"""What an operator cannot exceed from the browser: budgets, concurrent jobs, upload size.

Read from ``[lts.limits]`` in ``.streamlit/secrets.toml``, each overridable by an environment
variable (``LTS_MAX_BUDGET`` etc.); the defaults apply when neither is set. The CLI is not
limited: whoever has a shell on the host can already use it fully.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Mapping

from lts.errors import LtsError


class LimitExceeded(LtsError):
    """A browser request over one of the dashboard's limits."""


@dataclass(frozen=True)
class Limits:
    max_budget: int = 500  # evaluated architectures per search
    max_time_budget_s: float = 4 * 3600.0  # seconds per search
    max_concurrent_searches: int = 2  # searches running at once (any launcher, this database)
    max_upload_mb: float = 50.0  # one bundle upload
    max_concurrent_validations: int = 1
    max_validation_archs: int = 24
    max_validation_steps: int = 5000
    max_concurrent_darts: int = 1  # DARTS searches running at once
    max_darts_steps: int = 5000  # training steps per DARTS search

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise LtsError(f"limit {f.name} must be a positive number, got {value!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> "Limits":
        """Limits from ``[lts.limits]`` values, overridden by ``LTS_<NAME>`` environment variables."""
        values = dict(values or {})
        env = os.environ if env is None else env
        known = {f.name: f.type for f in fields(cls)}
        unknown = [k for k in values if k not in known]
        if unknown:
            raise LtsError(f"unknown limit {unknown[0]!r} in [lts.limits]; known: {', '.join(known)}")
        out: dict[str, Any] = {}
        for name in known:
            raw = env.get(f"LTS_{name.upper()}", values.get(name))
            if raw is None:
                continue
            cast = float if name.endswith(("_s", "_mb")) else int
            try:
                out[name] = cast(raw)
            except (TypeError, ValueError):
                raise LtsError(f"limit {name} must be a number, got {raw!r}") from None
        return cls(**out)

    # -- checks: each raises LimitExceeded with one line -------------------------------------
    def check_search(self, budget: int | None, time_budget: float | None) -> None:
        if budget is None and time_budget is None:
            raise LimitExceeded("give a budget (evaluations) or a time budget (seconds)")
        if budget is not None and budget > self.max_budget:
            raise LimitExceeded(f"budget {budget} is over this dashboard's limit of {self.max_budget} evaluations per search")
        if time_budget is not None and time_budget > self.max_time_budget_s:
            raise LimitExceeded(f"time budget {time_budget:g} s is over this dashboard's limit of "
                                f"{self.max_time_budget_s:g} s per search")

    def check_concurrent(self, running: int, kind: str = "searches") -> None:
        limit = {"searches": self.max_concurrent_searches, "DARTS runs": self.max_concurrent_darts}.get(
            kind, self.max_concurrent_validations)
        if running >= limit:
            raise LimitExceeded(f"{running} {kind} already running, this dashboard's limit is {limit}: "
                                f"wait for one to finish or cancel one")

    def check_upload(self, n_bytes: int) -> None:
        if n_bytes > self.max_upload_mb * 2**20:
            raise LimitExceeded(f"upload of {n_bytes / 2**20:.1f} MB is over this dashboard's limit of "
                                f"{self.max_upload_mb:g} MB")

    def check_validation(self, n_archs: int, steps: int) -> None:
        if n_archs > self.max_validation_archs:
            raise LimitExceeded(f"{n_archs} architectures is over this dashboard's limit of "
                                f"{self.max_validation_archs} per validation run")
        if steps > self.max_validation_steps:
            raise LimitExceeded(f"{steps} training steps is over this dashboard's limit of {self.max_validation_steps}")

    def check_darts(self, steps: int) -> None:
        if steps > self.max_darts_steps:
            raise LimitExceeded(f"{steps} training steps is over this dashboard's limit of {self.max_darts_steps} "
                                f"per DARTS search")
