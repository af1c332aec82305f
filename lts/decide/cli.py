"""``lts remeasure`` and ``lts reproduce``: the command-line side of the deciding views."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any


def _store(args: argparse.Namespace) -> Any:
    from lts.store.db import open_store

    return open_store(args.db)


def cmd_remeasure(args: argparse.Namespace) -> None:
    from lts.decide.remeasure import RemeasureRequest, remeasure
    from lts.store.rows import records

    store = _store(args)
    request = RemeasureRequest(tuple(args.arch_ids), args.device_name, args.protocol, args.timeout)
    table = remeasure(store, request, job_id=args.job, on_result=lambda row: print(json.dumps(
        {k: row.get(k) for k in ("arch_id", "device_id", "protocol", "latency_ms", "latency_cv", "repeats",
                                 "peak_memory_mb", "infeasible")}, sort_keys=True), flush=True))
    for row in records(table):
        old, new = row["old_latency_ms"], row["new_latency_ms"]
        change = "" if row["latency_change_pct"] is None else f" ({row['latency_change_pct']:+.1f}%)"
        print(f"{row['arch_id']} {row['protocol']}: latency {old if old is None else f'{old:.3f}'} -> "
              f"{new if new is None else f'{new:.3f}'} ms{change}")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from lts.decide.repro import reproduce_run
    from lts.errors import LtsError
    from lts.search.session import launch_background, open_runner
    from lts.search.exchange import import_bundle, parse_bundle

    store = _store(args)
    path = Path(args.source)
    if path.is_file():
        data = path.read_bytes()
        added = import_bundle(store, data, path.name)
        print("imported: " + ", ".join(f"{v} new {k}" for k, v in added.items()), flush=True)
        run_ids = [r["run_id"] for r in parse_bundle(data, path.name)["runs"]]
    else:
        run_ids = [args.source]
    if args.run:
        if args.run not in run_ids:
            raise LtsError(f"run {args.run} is not in {args.source}")
        run_ids = [args.run]
    for source in run_ids:
        run_id = reproduce_run(store, source, device_name=args.device_name)
        print(f"run {run_id} reproduces {source}", flush=True)
        if args.background:
            pid = launch_background(store.path, run_id)
            print(f"  running in the background (pid {pid}); follow it on the dashboard's Search page")
            continue
        with contextlib.ExitStack() as stack:
            run = open_runner(store, run_id, stack).run_to_end()
        print(f"  status {run['status']}: {run['n_evaluated']} evaluated, frontier {run['frontier_size']}")


def add_commands(sub: Any) -> None:
    def db_arg(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--db", help="SQLite database (default: $LTS_DB or results/lts.db)")

    r = sub.add_parser("remeasure", help="measure architectures again on this host (the old measurement is kept)")
    r.add_argument("arch_ids", nargs="+", metavar="ARCH_ID")
    r.add_argument("--device-name", required=True, help="name of this device in the results")
    r.add_argument("--protocol", help="protocol key (default: the one each architecture was last measured under)")
    from lts.cost.protocol import CANDIDATE_TIMEOUT_S

    r.add_argument("--timeout", type=float, default=CANDIDATE_TIMEOUT_S, help="seconds per candidate and worker")
    r.add_argument("--job", help=argparse.SUPPRESS)  # the dashboard's queued request this process runs
    db_arg(r)
    r.set_defaults(func=cmd_remeasure)

    p = sub.add_parser("reproduce", help="re-run a bundle's runs (or a run) on this machine with the same settings")
    p.add_argument("source", help="a results bundle (imported first) or a run id already in the database")
    p.add_argument("--device-name", help="name of this device in the results (needed when the run measures)")
    p.add_argument("--run", help="only this run of the bundle")
    p.add_argument("--background", action="store_true", help="start detached and return")
    db_arg(p)
    p.set_defaults(func=cmd_reproduce)
