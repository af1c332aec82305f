"""``lts proxies list|compare|benchmark``: the proxy registry and how well each proxy ranks trained models.

``benchmark flexibert`` ranks every proxy that applies to FlexiBERT encoders against GLUE
(:mod:`lts.flexibert.benchmark`).

Registered in :func:`lts.cli.build_parser` by one call to :func:`add_commands`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from lts.errors import LtsError

_COLUMNS = ("set", "proxy", "n", "spearman", "kendall", "top10_overlap", "seconds_per_arch", "note")


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key == "seconds_per_arch":
        return f"{v:.2e}" if v < 0.01 else f"{v:.3f}"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] = _COLUMNS) -> str:
    cells = [[_fmt(c, r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> None:
    from lts.proxies.registry import PROXIES

    rows = [spec.metadata() for spec in PROXIES.values()]
    if args.json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        return
    table = [{**r, **{k: "yes" if r[k] else "no" for k in ("needs_model", "needs_data", "needs_grad", "higher_is_better")}}
             for r in rows]
    print(format_table(table, ("name", "needs_model", "needs_data", "needs_grad", "higher_is_better", "summary")))


def _progress(label: str, enabled: bool) -> Callable[[int, int], None] | None:
    if not enabled:
        return None
    from tqdm import tqdm

    bar: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=label, unit="arch", file=sys.stderr)
        bar["bar"].update(done - bar["bar"].n)
        if done == total:
            bar["bar"].close()

    return update


def _db_path(arg: str | None) -> Path:
    return Path(arg or os.environ.get("LTS_DB", "results/lts.db"))


def cmd_compare(args: argparse.Namespace) -> None:
    import torch

    from lts.proxies.compute import ProxySettings
    from lts.proxies.registry import select

    if args.limit is not None and args.limit < 2:
        raise LtsError(f"--limit must be at least 2 (a rank correlation needs two models), got {args.limit}")
    if args.write_cache is not None and (args.limit is not None or args.proxies or args.validation is not None):
        raise LtsError("--write-cache stores the full reference comparison: drop --limit, --proxies and --validation")
    proxies = [s.name for s in select(args.proxies)]  # validates the names before any work
    settings = ProxySettings(batch=args.batch, seq_len=args.seq_len, seed=args.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # fixed thread count: deterministic values, modest CPU use
    try:
        rows = _compare_rows(args, proxies, settings)
    finally:
        torch.set_num_threads(threads)  # main() may run inside a longer process (tests, the dashboard)
    if args.json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
    else:
        print(format_table(rows))


def _compare_rows(args: argparse.Namespace, proxies: list[str], settings: Any) -> list[dict[str, Any]]:
    from lts.proxies.compare import CACHE_FILE, compare_reference, compare_validation, compute_reference, write_cache

    show = not args.no_progress and not args.json
    rows: list[dict[str, Any]] = []
    if args.validation is not None:
        from lts.store.db import Store

        db = _db_path(args.db)
        if not db.is_file():
            raise LtsError(f"{db}: no database, so no validation run yet; train some architectures with lts validate first")
        with Store(db) as store:
            rows += compare_validation(store, args.validation or None, proxies, settings, args.corpus,
                                       _progress("validation", show))
    if args.reference or args.validation is None:
        if args.write_cache is not None:
            dest = Path(args.write_cache) if args.write_cache else CACHE_FILE
            doc = compute_reference(proxies, None, settings, args.corpus, _progress("reference", show))
            write_cache(doc, dest)
            print(f"wrote {dest} ({len(doc['records'])} architectures, {doc['wall_seconds']} s)", file=sys.stderr)
            rows += doc["rows"]
        else:
            rows += compare_reference(proxies, args.limit, args.recompute, settings, corpus=args.corpus,
                                      progress=_progress("reference", show))
    return rows


_BENCH_COLUMNS = ("source", "proxy", "n", "spearman [95% CI]", "kendall [95% CI]", "top10", "s/arch", "note")
_BENCH_FIELDS = ("source", "proxy", "n", "spearman", "spearman_lo", "spearman_hi", "kendall", "kendall_lo",
                 "kendall_hi", "top10_overlap", "seconds_per_arch", "note")


def _with_ci(v: Any, lo: Any, hi: Any) -> str:
    if v is None:
        return "-"
    return f"{v:+.3f}" + (f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None and hi is not None else "")


def benchmark_table(rows: Sequence[dict[str, Any]]) -> str:
    """The benchmark rows as an aligned text table (intervals beside each correlation)."""
    cells = [{"source": r["source"], "proxy": r["proxy"], "n": _fmt("n", r["n"]),
              "spearman [95% CI]": _with_ci(r["spearman"], r.get("spearman_lo"), r.get("spearman_hi")),
              "kendall [95% CI]": _with_ci(r["kendall"], r.get("kendall_lo"), r.get("kendall_hi")),
              "top10": _fmt("top10", r.get("top10_overlap")), "s/arch": _fmt("seconds_per_arch", r.get("seconds_per_arch")),
              "note": r.get("note") or ""} for r in rows]
    return format_table(cells, _BENCH_COLUMNS)


def _alpha_lines(alpha: dict[str, Any]) -> list[str]:
    lines = []
    if "data_free" in alpha:
        lines.append(f"ZeroLM alpha, data-free: {alpha['data_free']:.4g} (self-parameter heuristic on 2,000 seeded "
                     "architectures of the space: the alpha ranking them most like their own encoder parameters)")
    if "cv" in alpha:
        lines.append("ZeroLM alpha fitted to GLUE, cross-validated on this file: " + alpha["cv"]["summary"])
        for f in alpha["cv"]["folds"]:
            rho = "-" if f["spearman"] is None else f"{f['spearman']:+.3f}"
            tau = "-" if f["kendall"] is None else f"{f['kendall']:+.3f}"
            lines.append(f"  fold {f['fold']}: fitted on {f['n_fit']}, alpha {f['alpha']:.4g}; held-out {f['n_held']}: "
                         f"Spearman {rho}, Kendall {tau}")
    if "dev_fit" in alpha:
        d = alpha["dev_fit"]
        lines.append(f"ZeroLM alpha fitted on the whole shipped dev half: {d['alpha']:.4g} "
                     f"({d['records_in_fit']} of the {d['records']} records ranked here were in that fit)")
    return lines


def cmd_benchmark(args: argparse.Namespace) -> None:
    import torch

    from lts.flexibert import benchmark as fb
    from lts.flexibert.config import FAMILY
    from lts.proxies.compute import EncoderProxySettings
    from lts.proxies.registry import select
    from lts.validate.correlations import BootstrapSettings

    if args.write_cache is not None and (args.data or args.limit is not None or args.proxies or args.published
                                         or args.corpus):
        raise LtsError("--write-cache stores the full table of the shipped records: drop --data, --published, "
                       "--limit, --proxies and --corpus")
    if args.bootstrap < 0:
        raise LtsError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    select(args.proxies, FAMILY)  # validates the names before any work
    settings = EncoderProxySettings(batch=args.batch, seq_len=args.seq_len, seed=args.seed)
    boot = BootstrapSettings(n_resamples=args.bootstrap, seed=args.seed)
    show = not args.no_progress and args.format == "table"
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # one thread: bit-stable values, comparable timings
    try:
        result = fb.run(args.data, args.published, args.proxies, settings, boot,
                        recompute=args.recompute or args.write_cache is not None, limit=args.limit,
                        corpus=args.corpus, progress=_progress("flexibert", show))
    finally:
        torch.set_num_threads(threads)
    if args.write_cache is not None:
        dest = Path(args.write_cache) if args.write_cache else fb.CACHE_FILE
        fb.write_cache(result, dest)
        print(f"wrote {dest} ({len(result.records)} architectures)", file=sys.stderr)
    if args.format == "json":
        for r in result.rows:
            print(json.dumps({k: r.get(k) for k in _BENCH_FIELDS}, sort_keys=True))
    elif args.format == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(_BENCH_FIELDS)
        for r in result.rows:
            w.writerow(["" if r.get(k) is None else r.get(k) for k in _BENCH_FIELDS])
    else:
        m = result.meta
        print(f"FlexiBERT benchmark: {m['n_scored']} architectures with GLUE from {m['data']} "
              f"(values {m['values_from']}); +1 = a larger value ranks exactly as a higher GLUE score")
        print(benchmark_table(result.rows))
        for line in _alpha_lines(result.alpha):
            print(line)


def _token_batch_options(p: argparse.ArgumentParser, seed_help: str) -> None:
    """The options of the proxies' token batch and model init, shared by compare and benchmark."""
    p.add_argument("--corpus", help="text file or folder for the token batch (default: the shipped corpus)")
    p.add_argument("--batch", type=int, default=16, help="sequences in the token batch")
    p.add_argument("--seq-len", type=int, default=32, help="tokens per sequence")
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--threads", type=int, default=1, help="torch threads")


def add_commands(sub: Any) -> None:
    """Add ``lts proxies ...`` to the ``lts`` sub-command parser."""
    p = sub.add_parser("proxies", help="training-free proxies: list them, compare them on trained models")
    ps = p.add_subparsers(dest="proxies_cmd", required=True)

    ls = ps.add_parser("list", help="every registered proxy and what it needs")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    c = ps.add_parser("compare", help="Spearman, Kendall, top-10%% overlap and s/arch of each proxy")
    c.add_argument("--reference", action="store_true",
                   help="LTS's 400 published models (the default when --validation is not given)")
    c.add_argument("--validation", nargs="?", const="", metavar="ID",
                   help="a validation run of the database (no ID: the latest)")
    c.add_argument("--db", help="SQLite database (default: $LTS_DB or results/lts.db)")
    c.add_argument("--limit", type=int, help="only the first N published models of each set (computed live)")
    c.add_argument("--proxies", help="comma list of proxies (default: all)")
    c.add_argument("--recompute", action="store_true", help="recompute instead of reading the shipped cache")
    c.add_argument("--write-cache", nargs="?", const="", metavar="PATH",
                   help="recompute the full reference comparison and write it (default: lts/data/proxy_reference.json)")
    _token_batch_options(c, seed_help="model init and batch seed")
    c.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=cmd_compare)

    b = ps.add_parser("benchmark", help="rank every applicable proxy against a trained benchmark (FlexiBERT: GLUE)")
    b.add_argument("space", choices=["flexibert"], help="the benchmark space")
    b.add_argument("--data", metavar="FILE.json",
                   help="records in the published format, .json or .json.gz (default: the shipped dev half, 250)")
    b.add_argument("--published", metavar="FILE.csv",
                   help="published proxy columns to rank beside lts's (default: the shipped CSV for the shipped data)")
    b.add_argument("--format", choices=["table", "json", "csv"], default="table")
    b.add_argument("--proxies", help="comma list of proxies (default: all; see lts.proxies.encoders)")
    b.add_argument("--limit", type=int, help="only the first N records (computed live)")
    b.add_argument("--recompute", action="store_true", help="recompute instead of reading the shipped result file")
    b.add_argument("--write-cache", nargs="?", const="", metavar="PATH",
                   help="recompute the shipped table and write it (default: lts/data/flexibert/proxy_values.json)")
    _token_batch_options(b, seed_help="model init, token batch and bootstrap seed")
    b.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the intervals (0: none)")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=cmd_benchmark)
