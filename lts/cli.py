"""The ``lts`` command line: a thin layer over the library (argparse, one sub-command a job).

Every failure the user can cause prints one line, ``lts: error: ...``, and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from lts.darts.cli import add_commands as add_darts_commands
from lts.decide.cli import add_commands as add_decide_commands
from lts.errors import LtsError
from lts.proxies.cli import add_commands as add_proxy_commands
from lts.team.cli import add_commands as add_team_commands
from lts.surrogate.cli import add_commands as add_surrogate_commands
from lts.validate.cli import add_commands as add_validate_commands


def _dump(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


class _Parser(argparse.ArgumentParser):
    """argparse, but a refused argument is one ``lts: error: ...`` line (status 2), like every other
    bad input, not a wrapped usage block: scripts read the last line, people the message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        print(f"lts: error: {command + ': ' if command else ''}{message.splitlines()[0] if message else ''}",
              file=sys.stderr)
        sys.exit(2)


def int_arg(lo: int, hi: int | None = None) -> Any:
    """An argparse ``type``: an integer in [lo, hi], refused by argparse itself otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also a number of more than 4300 digits
            raise argparse.ArgumentTypeError(f"expected an integer, got {text[:40]!r}") from None
        if value < lo or (hi is not None and value > hi):
            want = f">= {lo:,}" if hi is None else f"in {lo:,}..{hi:,}"
            raise argparse.ArgumentTypeError(f"must be an integer {want}, got {text[:40]}")
        return value

    parse.__name__ = "integer"
    return parse


def float_arg(lo: float = 0.0, hi: float | None = None, lo_open: bool = True) -> Any:
    """An argparse ``type``: a finite number above ``lo`` (or at it, with ``lo_open=False``), at most ``hi``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None
        # nan and inf parse as floats, and NaN compares False with every bound: test finiteness first
        below = value <= lo if lo_open else value < lo
        if not float("-inf") < value < float("inf") or below or (hi is not None and value > hi):
            want = (f"{'>' if lo_open else '>='} {lo:g}") + ("" if hi is None else f" and <= {hi:g}")
            raise argparse.ArgumentTypeError(f"must be a finite number {want}, got {text[:40]}")
        return value

    parse.__name__ = "number"
    return parse


def _read_text(path: str) -> tuple[str, str]:
    """(text, source) of a file or of stdin ('-'), any failure as one LtsError line."""
    if path == "-":
        try:
            return sys.stdin.read(), "<stdin>"
        except UnicodeDecodeError:
            raise LtsError("<stdin>: not text (not UTF-8)") from None
    p = Path(path)
    if not p.is_file():
        raise LtsError(f"{path}: {'is a directory' if p.is_dir() else 'no such file'}")
    try:
        return p.read_bytes().decode("utf-8-sig"), path
    except UnicodeDecodeError:
        raise LtsError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise LtsError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _read_configs(path: str) -> Iterator[tuple[str, Any]]:
    """Configs from any architecture document (lts.space.documents: configs, records, the dashboard's
    selection, an lts Hugging Face config.json; '-': stdin)."""
    from lts.space.documents import read_configs

    text, source = _read_text(path)
    return read_configs(text, source)


# -- sub-commands -------------------------------------------------------------------------
def cmd_space_show(args: argparse.Namespace) -> None:
    from lts.space.ranges import load_space

    space = load_space(args.space)
    print(json.dumps({**space.to_dict(), "log10_size": round(space.log10_size(), 2)}, indent=2))


def cmd_sample(args: argparse.Namespace) -> None:
    from lts.space.ranges import load_space

    space = load_space(args.space)
    rng = random.Random(args.seed)
    for _ in range(args.n):
        print(space.sample(rng).canonical_json())


def cmd_proxy(args: argparse.Namespace) -> None:
    from lts.space.counts import breakdown, proxy_values
    from lts.space.ranges import load_space

    space = load_space(args.space) if args.space else None
    configs = list(_read_configs(args.file))  # the whole file is checked before anything is printed
    for where, cfg in configs:
        if space is not None:
            try:
                space.check(cfg)
            except LtsError as exc:
                raise LtsError(f"{where}: {exc}") from None
    for where, cfg in configs:
        out = {"arch_id": cfg.arch_id, "family": cfg.family, **proxy_values(cfg)}
        if args.breakdown:
            out["breakdown"] = breakdown(cfg)
        print(_dump(out))


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def cmd_reference_correlations(args: argparse.Namespace) -> None:
    from lts.reference import correlations, load_reference

    rows = correlations(load_reference())
    if not args.all:
        rows = [r for r in rows if r["set"].startswith("random")]
    if args.json:
        for r in rows:
            print(_dump(r))
    else:
        print(_table(rows, ["set", "n", "proxy", "spearman", "kendall"]))


def cmd_reference_params(args: argparse.Namespace) -> None:
    from lts.reference import load_reference, param_agreement

    rows = [{"set": k, **v} for k, v in param_agreement(load_reference()).items()]
    if args.json:
        for r in rows:
            print(_dump(r))
    else:
        print(_table(rows, ["set", "n", "nonembedding_exact", "total_exact", "attn_exact", "ffn_exact"]))


def cmd_reference_pack(args: argparse.Namespace) -> None:
    from lts.reference import DATA_FILE, pack

    n = pack(Path(args.source), Path(args.dest) if args.dest else DATA_FILE)
    print(f"packed {n} published architectures")


def cmd_measure(args: argparse.Namespace) -> None:
    from lts.cost import Measurer, Protocol, detect_device

    configs = [cfg for _, cfg in _read_configs(args.file)]  # a bad file fails before any measuring
    device = detect_device(args.device_name, kind=args.kind, threads=args.threads)
    protocol = Protocol(batch=args.batch, seq_len=args.seq_len, backend=args.backend, kind=args.kind,
                        threads=device.threads, workload=args.workload, prompt_len=args.prompt_len,
                        new_tokens=args.new_tokens, quant=args.quant)
    with Measurer(device, protocol, memory_limit_mb=args.memory_limit_mb, timeout_s=args.timeout) as m:
        for cfg in configs:
            row = m.measure(cfg).to_dict()
            print(_dump({**row, "family": cfg.family, "device": device.to_dict()}), flush=True)


def cmd_export(args: argparse.Namespace) -> None:
    import re

    from lts import export
    from lts.store.db import DEFAULT_DB

    is_id = re.fullmatch(r"[0-9a-f]{16}", args.source) is not None and not Path(args.source).exists()
    # a file's architectures get their provenance (measurements, runs) from a database that exists
    wants_db = is_id or args.trained or args.validation or args.db is not None or DEFAULT_DB.is_file()
    store = _store(args) if wants_db else None
    if is_id:
        configs = [(args.source, export.stored_config(store, args.source))]
    else:
        configs = list(_read_configs(args.source))  # every config is checked before anything is written
    out = Path(args.output)
    for where, cfg in configs:
        dest = out if len(configs) == 1 else out / cfg.arch_id
        try:
            files = export.write(store, cfg, dest, args.format, trained=args.trained, validation_id=args.validation)
        except OSError as exc:
            raise LtsError(f"{dest}: cannot write ({exc.strerror or exc})") from None
        kind = "trained" if args.trained or args.validation else "architecture only"
        print(f"{cfg.arch_id} ({cfg.family}, {kind}) -> {dest}/ ({len(files)} files)")


# -- search and store ---------------------------------------------------------------------
def _store(args: argparse.Namespace):
    from lts.store.db import open_store

    return open_store(args.db)


def cmd_search(args: argparse.Namespace) -> None:
    import contextlib

    from tqdm import tqdm

    from lts.search.defaults import default_population
    from lts.objectives import Constraints
    from lts.search.session import open_runner, plan_run, start_run
    from lts.surrogate.assist import SurrogateSettings
    from lts.surrogate.drift import DriftSettings

    if args.resume:
        store = _store(args)
        run_id = args.resume
    else:
        if args.budget is None and args.time_budget is None:
            raise LtsError("give --budget N (evaluations) and/or --time-budget SECONDS")
        # Planned (every setting checked) before the database is opened: a refused search leaves the
        # file as it was (not created, not migrated, no run row).
        plan = plan_run(
            args.space, args.device_name, budget=args.budget, time_budget=args.time_budget,
            objectives=args.objectives,
            constraints=Constraints(args.max_latency_ms, args.max_memory_mb, args.min_params, args.max_params),
            strategy=args.strategy, seed=args.seed, generation=args.generation,
            population=args.population or default_population(args.surrogate),
            batch=args.batch, seq_len=args.seq_len, threads=args.threads,
            workload=args.workload, prompt_len=args.prompt_len, new_tokens=args.new_tokens, quant=args.quant,
            backend=args.backend, surrogate=SurrogateSettings(pool_factor=args.surrogate_pool, z=args.surrogate_z,
                                        inner_generations=args.surrogate_inner) if args.surrogate else None,
            drift=DriftSettings(every=args.drift_every, threshold=args.drift_threshold),
            memory_limit_mb=args.memory_limit_mb,
        )
        store = _store(args)
        run_id = start_run(store, plan, args.device_name, ray_address=args.ray_address)
    print(f"run {run_id}", flush=True)
    with contextlib.ExitStack() as stack:
        runner = open_runner(store, run_id, stack)
        bar = stack.enter_context(tqdm(total=runner.settings.budget, desc=f"search {run_id}", unit="arch",
                                       disable=args.no_progress, file=sys.stderr))
        bar.update(len(runner.members))

        def progress(p: Any) -> None:
            bar.update(p.n_evaluated - bar.n)
            hv = "-" if p.hypervolume is None else f"{p.hypervolume:.4f}"
            bar.set_postfix_str(f"frontier={p.frontier_size} hv={hv}", refresh=False)

        runner.on_progress = progress
        try:
            run = runner.run_to_end()
        except KeyboardInterrupt:
            raise LtsError(f"interrupted; resume with: lts search --resume {run_id}") from None
    hv = "-" if run["hypervolume"] is None else f"{run['hypervolume']:.4f}"
    print(f"status {run['status']}: {run['n_evaluated']} evaluated, frontier {run['frontier_size']}, hypervolume {hv}")
    if run.get("message"):  # why it stopped early (nothing new found, cancelled, ...)
        print(f"message: {run['message']}")
    from lts.store.runs import progress_of_row

    state = progress_of_row(run)
    if "screened" in state:
        from lts.surrogate.assist import prediction_error

        err = ", ".join(f"{k} {v['mape']:.1f}% ({v['n']})" for k, v in prediction_error(store, run_id).items())
        print(f"surrogate: {state['screened']} children screened, {run['n_evaluated']} measured; "
              f"prediction error of the measured ones (MAPE) {err or '-'}")
    if state.get("drift_flags"):
        print(f"drift: {state['drift_flags']} check(s) flagged; measurements in those windows are marked")
    _print_frontier(store, run_id, "table")


_FRONT_COLUMNS = ["arch_id", "decoder_params", "latency_ms", "peak_memory_mb", "n_layer", "d_model", "eval_index"]


def _print_frontier(store: Any, run_id: str, fmt: str) -> None:
    from lts.search.runner import frontier_rows

    rows = sorted(frontier_rows(store, run_id), key=lambda r: -r["decoder_params"])
    proxies = sorted({k for r in rows for k in r if k.startswith("proxy:")})  # the run's proxy objectives
    # the generate workload's figures, when the run measured them
    from lts.objectives import GENERATION_OBJECTIVES, objective

    generated = [c for c in (objective(n).column for n in GENERATION_OBJECTIVES) if any(r.get(c) is not None for r in rows)]
    columns = _FRONT_COLUMNS[:2] + [p.split(":", 1)[1] for p in proxies] + _FRONT_COLUMNS[2:4] + generated + _FRONT_COLUMNS[4:]
    rows = [{**r, **{p.split(":", 1)[1]: r[p] for p in proxies}} for r in rows]
    if fmt == "json":
        for r in rows:
            print(_dump({**{k: r[k] for k in columns}, "config": json.loads(r["config_json"])}))
    elif fmt == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(columns + ["config_json"])
        for r in rows:
            w.writerow([r[k] for k in columns] + [r["config_json"]])
    else:
        print(_table([{k: ("-" if r[k] is None else (f"{r[k]:.4g}" if k in columns[2:2 + len(proxies)] else r[k]))
                       for k in columns} for r in rows], columns) if rows else "(empty frontier)")


def cmd_frontier(args: argparse.Namespace) -> None:
    _print_frontier(_store(args), args.run_id, args.format)


def cmd_runs(args: argparse.Namespace) -> None:
    import time as _time

    from lts.search.session import effective_status

    rows = []
    for r in _store(args).runs():
        rows.append({"run_id": r["run_id"], "family": r["family"], "strategy": r["strategy"],
                     "device": r["device_name"] or "-", "status": effective_status(r), "evaluated": r["n_evaluated"],
                     "budget": r["budget"] or "-", "frontier": r["frontier_size"],
                     "hypervolume": "-" if r["hypervolume"] is None else round(r["hypervolume"], 4),
                     "created": _time.strftime("%Y-%m-%d %H:%M", _time.localtime(r["created_at"]))})
    cols = ["run_id", "family", "strategy", "device", "status", "evaluated", "budget", "frontier", "hypervolume", "created"]
    print(_table(rows, cols) if rows else "no runs yet: start one with lts search --space gpt2 --device-name NAME --budget 50")


def cmd_export_run(args: argparse.Namespace) -> None:
    from lts.store.bundle import write_bundle

    out = Path(args.output)
    # Checked before anything is exported: the bundle is written in one go at the end.
    if out.is_dir():
        raise LtsError(f"{args.output}: is a directory (give the bundle's file name)")
    if not out.parent.is_dir():
        raise LtsError(f"{args.output}: no such folder {str(out.parent)!r}")
    try:
        n = write_bundle(_store(args), args.run_ids, args.output)
    except OSError as exc:  # unwritable folder, full disk, ...
        raise LtsError(f"{args.output}: cannot write ({exc.strerror or type(exc).__name__})") from None
    print(f"wrote {args.output}: " + ", ".join(f"{v} {k}" for k, v in n.items()))


def cmd_import(args: argparse.Namespace) -> None:
    from lts.search.exchange import import_bundle, parse_bundle, summary_line

    p = Path(args.bundle)
    if not p.is_file():
        raise LtsError(f"{args.bundle}: no such file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise LtsError(f"{args.bundle}: cannot read ({exc.strerror})") from None
    bundle = parse_bundle(data, args.bundle)  # a refused bundle must not even create the database
    added = import_bundle(_store(args), data, args.bundle, bundle=bundle)
    print(f"imported {args.bundle}: {summary_line(added)}")


def _workload_args(p: argparse.ArgumentParser) -> None:
    from lts.space.config import LIMITS

    p.add_argument("--workload", choices=["forward", "generate"], default="forward",
                   help="forward: one forward over (batch, seq-len); generate: a prompt's prefill, then one "
                   "token at a time with the KV cache / memory (prefill_ms, decode_ms_per_token, tokens_per_s)")
    p.add_argument("--prompt-len", type=int_arg(1, LIMITS["prompt_len"]), default=64, help="generate: prompt tokens")
    p.add_argument("--new-tokens", type=int_arg(1, LIMITS["new_tokens"]), default=32, help="generate: new tokens")
    p.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                   help="onnxruntime: each candidate exported to ONNX and timed in an ONNX Runtime CPU session "
                   "(the forward workload)")
    p.add_argument("--quant", choices=["none", "int8"], default="none",
                   help="int8: the decoder's Linear layers dynamically quantized (CPU; accuracy not measured)")


def _add_search_commands(sub: Any) -> None:
    def db_arg(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--db", help="SQLite database (default: $LTS_DB or results/lts.db)")

    s = sub.add_parser("search", help="run (or --resume) a multi-objective architecture search")
    s.add_argument("--space", default="gpt2", help="gpt2, transxl or a space file")
    s.add_argument("--device-name", help="name of this device in the results")
    from lts.search.defaults import GENERATION, OBJECTIVES, POPULATION, SURROGATE_POPULATION
    from lts.surrogate.defaults import POOL_FACTOR as SURROGATE_POOL, Z as SURROGATE_Z
    from lts.space.config import LIMITS

    s.add_argument("--budget", type=int_arg(1, 10**9), help="number of architectures to evaluate")
    s.add_argument("--time-budget", type=float_arg(0), help="seconds of search (across resumes)")
    s.add_argument("--objectives", default=",".join(OBJECTIVES), help="comma list: proxy (decoder parameters), latency, memory, or any proxy of "
                   "`lts proxies list` (e.g. zerolm,latency,memory)")
    s.add_argument("--max-latency-ms", type=float_arg(0))
    s.add_argument("--max-memory-mb", type=float_arg(0),
                   help="constraint: candidates whose peak memory is higher are infeasible (their latency not recorded)")
    s.add_argument("--memory-limit-mb", type=float_arg(0, LIMITS["memory_mb"]),
                   help="candidates needing more memory are infeasible, their latency not recorded (like lts measure)")
    s.add_argument("--min-params", type=int_arg(1), help="minimum decoder parameters")
    s.add_argument("--max-params", type=int_arg(1), help="maximum decoder parameters")
    s.add_argument("--strategy", default="evolution",
                   help="evolution (default), random, or Optuna's samplers optuna-nsga2, optuna-tpe, optuna-gp "
                   "(lts.search.strategies.STRATEGIES, checked there)")
    s.add_argument("--seed", type=int_arg(-(2**63), 2**63 - 1), default=0)  # stored as a SQLite integer
    s.add_argument("--population", type=int_arg(1, LIMITS["population"]),
                   help="evolution: initial random members / parent pool "
                   f"(default {POPULATION}; {SURROGATE_POPULATION} with --surrogate, which screens from the "
                   f"{SURROGATE_POPULATION + 1}th on)")
    s.add_argument("--generation", type=int_arg(1, LIMITS["generation"]), default=GENERATION,
                   help="evolution: children per generation")
    s.add_argument("--batch", type=int_arg(1, LIMITS["batch"]), default=1)
    s.add_argument("--seq-len", type=int_arg(1, LIMITS["seq_len"]), help="default: the space's tgt_len")
    _workload_args(s)
    s.add_argument("--threads", type=int_arg(1, LIMITS["threads"]), default=1)
    s.add_argument("--surrogate", action="store_true",
                   help="screen children by predicted latency/memory; measure only those that may reach the front")
    s.add_argument("--surrogate-pool", type=int_arg(1, LIMITS["surrogate_pool"]), default=SURROGATE_POOL,
                   help=f"children proposed per child measured (default {SURROGATE_POOL})")
    s.add_argument("--surrogate-z", type=float_arg(0, 100, lo_open=False), default=SURROGATE_Z,
                   help="optimism in predicted standard deviations")
    s.add_argument("--surrogate-inner", type=int_arg(0, 20), default=0,
                   help="generations of evolution on the predictions before each measured one (0: off; "
                        "10 with --surrogate-pool 10 led Optuna's samplers in bench/search_vs_peers.py)")
    s.add_argument("--drift-every", type=int_arg(0, 10**9), default=0,
                   help="re-measure a reference architecture every N evaluations (0: off); flags device drift")
    s.add_argument("--drift-threshold", type=float_arg(0, 10), default=0.15, help="relative change that flags drift")
    s.add_argument("--ray-address", help="measure on the Ray cluster's device --device-name (auto, HOST:PORT, ray://HOST:10001)")
    s.add_argument("--resume", metavar="RUN_ID", help="continue a stopped run")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    db_arg(s)
    s.set_defaults(func=cmd_search)

    r = sub.add_parser("runs", help="list the runs in the database")
    db_arg(r)
    r.set_defaults(func=cmd_runs)

    f = sub.add_parser("frontier", help="print a run's Pareto frontier")
    f.add_argument("run_id")
    f.add_argument("--format", choices=["table", "json", "csv"], default="table")
    db_arg(f)
    f.set_defaults(func=cmd_frontier)

    e = sub.add_parser("export-run", help="write runs and what they reference to a results bundle")
    e.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    e.add_argument("-o", "--output", required=True)
    db_arg(e)
    e.set_defaults(func=cmd_export_run)

    i = sub.add_parser("import", help="import a results bundle (validated, all-or-nothing, idempotent)")
    i.add_argument("bundle")
    db_arg(i)
    i.set_defaults(func=cmd_import)


def build_parser() -> argparse.ArgumentParser:
    from lts.space.config import LIMITS  # light: lts.proxies.cli imports it anyway

    p = _Parser(prog="lts", description="Training-free, hardware-aware Transformer LM search.")
    sub = p.add_subparsers(dest="command", required=True)

    space = sub.add_parser("space", help="search spaces").add_subparsers(dest="space_cmd", required=True)
    show = space.add_parser("show", help="print a space's ranges (family name or JSON/YAML file)")
    show.add_argument("space")
    show.set_defaults(func=cmd_space_show)

    sample = sub.add_parser("sample", help="sample architectures (JSON lines)")
    sample.add_argument("--space", default="gpt2", help="gpt2, transxl or a space file")
    sample.add_argument("-n", type=int_arg(0), default=5)
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(func=cmd_sample)

    proxy = sub.add_parser("proxy", help="analytic proxies of configs in a JSON file ('-': stdin)")
    proxy.add_argument("file")
    proxy.add_argument("--space", help="also check the configs lie inside this space")
    proxy.add_argument("--breakdown", action="store_true", help="add parameter counts by part")
    proxy.set_defaults(func=cmd_proxy)

    ref = sub.add_parser("reference", help="LTS's published results").add_subparsers(dest="ref_cmd", required=True)
    corr = ref.add_parser("correlations", help="Spearman/Kendall of each proxy against published perplexity")
    corr.add_argument("--all", action="store_true", help="include the Pareto sets, not only the random sets")
    corr.add_argument("--json", action="store_true")
    corr.set_defaults(func=cmd_reference_correlations)
    params = ref.add_parser("params", help="how many published parameter counts lts reproduces")
    params.add_argument("--json", action="store_true")
    params.set_defaults(func=cmd_reference_params)
    pk = ref.add_parser("pack", help="rebuild the shipped data file from Archai's saved_logs tree")
    pk.add_argument("source")
    pk.add_argument("--dest")
    pk.set_defaults(func=cmd_reference_pack)

    ms = sub.add_parser("measure", help="latency and peak memory of configs on this device (JSON lines)")
    ms.add_argument("file", help="JSON file: one config, a list, or JSON lines ('-': stdin)")
    ms.add_argument("--device-name", required=True, help="name of this device in the results")
    ms.add_argument("--batch", type=int_arg(1, LIMITS["batch"]), default=1)
    ms.add_argument("--seq-len", type=int_arg(1, LIMITS["seq_len"]), help="default: each config's tgt_len")
    _workload_args(ms)
    ms.add_argument("--kind", default="cpu", choices=["cpu", "cuda"])
    ms.add_argument("--threads", type=int_arg(1, LIMITS["threads"]), help="torch threads (default 1)")
    ms.add_argument("--memory-limit-mb", type=float_arg(0, LIMITS["memory_mb"]),
                    help="candidates needing more are infeasible")
    ms.add_argument("--timeout", type=float_arg(0, LIMITS["timeout_s"]), default=120.0,
                    help="seconds per candidate and worker")
    ms.set_defaults(func=cmd_measure)

    ex = sub.add_parser("export", help="write architectures as Hugging Face folders or lts JSON")
    ex.add_argument("source", help="an architecture id in the database, or an architecture document "
                                   "(config, list, JSON lines, the dashboard's selection, an lts config.json)")
    ex.add_argument("--format", choices=["hf", "gpt2", "lts"], default="hf",
                    help="hf: a folder AutoModelForCausalLM loads (default); gpt2: transformers' own "
                         "GPT2LMHeadModel (homogeneous GPT-2 shapes without cutoffs); lts: the lts JSON")
    ex.add_argument("-o", "--output", required=True, help="folder (one sub-folder per architecture for several)")
    ex.add_argument("--trained", action="store_true",
                    help="with the weights a validation run kept (its lowest-perplexity run)")
    ex.add_argument("--validation", metavar="VALIDATION_ID", help="with the weights this validation kept")
    ex.add_argument("--db", help="SQLite database (default: $LTS_DB or results/lts.db)")
    ex.set_defaults(func=cmd_export)

    _add_search_commands(sub)
    add_proxy_commands(sub)
    add_validate_commands(sub)
    add_darts_commands(sub)
    add_surrogate_commands(sub)
    add_decide_commands(sub)
    add_team_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a refused argument (its one line is printed) or --help: return the status
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if getattr(args, "n", 1) is not None and getattr(args, "n", 1) < 0:
        parser.error("-n must be >= 0")
    try:
        args.func(args)
    except LtsError as exc:
        print(f"lts: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lts sample -n 1000 | head` is normal use
        return 0
    except MemoryError:
        print("lts: error: out of memory", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last resort for the database's own failures
        import sqlite3

        if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.IntegrityError):
            raise
        # The store turns a corrupt, read-only or busy file into LtsError; this catches what reaches
        # sqlite3 another way (a pandas read), so the user still gets one line, not a traceback.
        db = getattr(args, "db", None) or "the database"
        print(f"lts: error: {db}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
