"""Re-run an imported run on this machine: same space, settings and seed, this host's device.

A results bundle (``lts export-run``, the dashboard's Data page) carries a run's settings; once it
is imported, :func:`reproduce_run` creates a new run with exactly those settings (strategy, seed,
budget, objectives, constraints, evolution settings, measurement protocol) on this machine, and
records which run it reproduces in its state. The linked-fronts view then shows the two fronts on
shared axes: "my front vs yours" (and vs the LTS paper's). With the same device behaviour the
two runs follow the same path; on another device they differ exactly where the device does.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Mapping

import pandas as pd

from lts.errors import LtsError
from lts.search.runner import create_run, settings_of
from lts.store import runs as store_runs
from lts.store.runs import settings_of_row
from lts.store.db import Store


def reproduce_run(store: Store, source_run_id: str, device_name: str | None = None,
                  device: Mapping[str, Any] | None = None,
                  admit: Callable[[sqlite3.Connection], None] | None = None) -> str:
    """Create (not start) a run with ``source_run_id``'s settings on this machine; returns its id.

    ``device_name`` detects this host's device (with the source protocol's threads); ``device``
    passes a record instead (tests, or measuring elsewhere). A proxy-only run needs neither.
    """
    source = store.run(source_run_id)
    state = settings_of_row(source)
    settings = settings_of(source)
    protocol = state.get("protocol")
    if settings.needs_measurement and device is None:
        from lts.cost.device import detect_device
        from lts.decide.provenance import parse_protocol_key

        protocol = protocol or parse_protocol_key(source["protocol"])
        if protocol is None:
            raise LtsError(f"run {source_run_id} has no measurement protocol this host can re-run")
        if not device_name or not device_name.strip():
            raise LtsError("a device name is required to re-run a search that measures latency or memory")
        device = detect_device(device_name.strip(), kind=protocol.get("kind", "cpu"),
                               threads=int(protocol.get("threads", 1))).to_dict()
    extra: dict[str, Any] = {}
    if protocol is not None:
        extra["protocol"] = protocol
    return create_run(store, settings, dict(device) if device is not None and settings.needs_measurement else None,
                      source["protocol"] if settings.needs_measurement else None, state=extra, admit=admit,
                      reproduces=source_run_id)


def reproductions(store: Store) -> pd.DataFrame:
    """(run_id, reproduces) for every run created by :func:`reproduce_run`."""
    rows = [{"run_id": run_id, "reproduces": source} for run_id, source in store_runs.reproductions(store)]
    return pd.DataFrame(rows, columns=["run_id", "reproduces"])


def compare_packages(theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> pd.DataFrame:
    """Package versions of a bundle beside this machine's, with a flag where they differ."""
    names = list(dict.fromkeys([*theirs, *ours]))
    return pd.DataFrame({"package": names, "bundle": [theirs.get(n) for n in names],
                         "here": [ours.get(n) for n in names],
                         "differs": [theirs.get(n) != ours.get(n) for n in names]})
