"""Results bundles as lts reads them: the store's bundle format (:mod:`lts.store.bundle`) checked
with the search's own parsers, so a run that would fail on resume or re-run fails at import, in
one line naming the field. The CLI, the dashboard and the team layer import bundles through here."""

from __future__ import annotations

from typing import Any

from lts.cost.protocol import Protocol
from lts.objectives import Constraints, parse_objectives
from lts.search.runner import settings_of
from lts.search.strategies import EvolutionSettings, rng_from_json
from lts.space.ranges import SearchSpace
from lts.store import bundle as _bundle
from lts.store.bundle import (MAX_BYTES, SUMMARY_KEYS, RunChecks, export_runs, package_versions,  # noqa: F401
                              summary_line, write_bundle)
from lts.store.db import Store
from lts.surrogate.assist import SurrogateSettings
from lts.surrogate.drift import DriftSettings

RUN_CHECKS = RunChecks(
    space=SearchSpace.from_dict,
    objectives=parse_objectives,
    constraints=Constraints.from_dict,
    state=(
        lambda state: EvolutionSettings(**state.get("evolution", {})),
        lambda state: SurrogateSettings(**state["surrogate"]) if state.get("surrogate") else None,
        lambda state: DriftSettings(**state.get("drift", {})),
        lambda state: Protocol.from_dict(state["protocol"]) if state.get("protocol") is not None else None,
        lambda state: rng_from_json(state["rng"]) if "rng" in state else None,
    ),
    whole=settings_of,
)


def parse_bundle(data: bytes | str, source: str = "bundle") -> dict[str, Any]:
    """Decode and validate a bundle, runs' settings included (one-line LtsError otherwise)."""
    return _bundle.parse_bundle(data, source, RUN_CHECKS)


def import_bundle(store: Store, data: bytes | str, source: str = "bundle",
                  bundle: dict[str, Any] | None = None) -> dict[str, int]:
    """Validate (unless ``bundle`` is ``data`` parsed by :func:`parse_bundle`), then insert all of it
    in one transaction; returns the rows added per table."""
    return _bundle.import_bundle(store, data, source, bundle=bundle, checks=RUN_CHECKS)
