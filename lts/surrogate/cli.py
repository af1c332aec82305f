"""``lts surrogate``: fit, adapt and report cost surrogates."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lts.errors import LtsError


def _store(args: argparse.Namespace) -> Any:
    from lts.store.db import open_store

    return open_store(args.db)


def _objectives(text: str) -> tuple[str, ...]:
    return ("latency", "memory") if text == "both" else (text,)


def cmd_fit(args: argparse.Namespace) -> None:
    from lts.surrogate.data import resolve
    from lts.surrogate.fit import fit_surrogate
    from lts.surrogate.model import KINDS

    kinds = KINDS if args.kind == "auto" else (args.kind,)
    store = _store(args)
    device_id, protocol = resolve(store, args.device_name, args.protocol)
    for obj in _objectives(args.objective):
        s = fit_surrogate(store, device_id, protocol, obj, n_train=args.train, seed=args.seed, kinds=kinds,
                         hold_out=args.hold_out)
        h = s.figures.get("held_out") or {}
        held = (f"held-out {h['n']}: MAPE {h['mape']:.2f}%, within +-10% {h['within_10']:.1f}%, tau {h['kendall']:.3f}"
                if h else "no held-out architectures left (all used for training)")
        print(f"{args.device_name} {protocol} {obj}: v{s.version} {s.model.kind} on {len(s.train_ids)}; {held}")


def cmd_adapt(args: argparse.Namespace) -> None:
    from lts.surrogate.data import resolve
    from lts.surrogate.fit import load
    from lts.surrogate.transfer import adapt

    store = _store(args)
    src_dev, src_proto = resolve(store, args.from_device, args.from_protocol)
    device_id, protocol = resolve(store, args.device_name, args.protocol)
    for obj in _objectives(args.objective):
        source = load(store, src_dev, src_proto, obj)
        s = adapt(store, source, device_id, protocol, k=args.k, seed=args.seed)
        h = s.figures.get("held_out") or {}
        held = f"; held-out {h['n']}: MAPE {h['mape']:.2f}%, tau {h['kendall']:.3f}" if h else ""
        print(f"{args.device_name} {protocol} {obj}: v{s.version} adapted from {args.from_device} v{source.version} "
              f"with {len(s.train_ids)} measurements{held}")


def cmd_report(args: argparse.Namespace) -> None:
    from lts.surrogate.fit import report_rows

    rows = report_rows(_store(args))
    if args.format == "json":
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        return
    if not rows:
        raise LtsError("no surrogates yet; fit one with lts surrogate fit --device-name NAME")
    cols = ["device", "protocol", "objective", "version", "model", "train_n", "test_n", "mape", "within_10", "kendall",
            "coverage_1sd", "params_mape", "params_kendall", "flops_mape", "flops_kendall"]
    cells = [[("-" if r[c] is None else f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c])) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    print("(figures on held-out architectures; params/flops: a power law of decoder params / FLOPs fitted on the "
          "same training set; coverage_1sd: share within one predicted standard deviation, 68% if calibrated)")


def add_commands(sub: Any) -> None:
    from lts.surrogate.defaults import DEFAULT_TRAIN, HOLD_OUT, KINDS  # not .fit/.model: they pull numpy and scipy

    sg = sub.add_parser("surrogate", help="cost surrogates: predict latency and memory before measuring")
    ss = sg.add_subparsers(dest="surrogate_cmd", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--objective", choices=["latency", "memory", "both"], default="both")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--db", help="SQLite database (default: $LTS_DB or results/lts.db)")

    f = ss.add_parser("fit", help="fit a new version from this device's measurements in the database")
    f.add_argument("--device-name", required=True)
    f.add_argument("--protocol", help="protocol key (default: the device's most measured)")
    f.add_argument("--train", type=int, default=DEFAULT_TRAIN,
                   help=f"training architectures (default {DEFAULT_TRAIN}); the rest are held out, at least "
                        f"--hold-out of them")
    f.add_argument("--hold-out", type=float, default=HOLD_OUT,
                   help=f"share always held out to report errors (default {HOLD_OUT}; 0: train on every measurement)")
    f.add_argument("--kind", choices=["auto", *KINDS], default="auto", help="model (auto: chosen by cross-validation)")
    common(f)
    f.set_defaults(func=cmd_fit)

    a = ss.add_parser("adapt", help="adapt another device's surrogate from a few measurements on this one")
    a.add_argument("--from-device", required=True)
    a.add_argument("--from-protocol")
    a.add_argument("--device-name", required=True)
    a.add_argument("--protocol")
    a.add_argument("--k", type=int, default=10, help="measurements of the new device to use (default 10)")
    common(a)
    a.set_defaults(func=cmd_adapt)

    r = ss.add_parser("report", help="the figures of the latest surrogate per device, protocol and objective")
    r.add_argument("--format", choices=["table", "json"], default="table")
    r.add_argument("--db", help="SQLite database (default: $LTS_DB or results/lts.db)")
    r.set_defaults(func=cmd_report)
