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

from lts.errors import LtsError


def _dump(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


def _read_configs(path: str) -> Iterator[tuple[str, Any]]:
    """Configs from a JSON file holding one object, a list of objects, or JSON lines ('-': stdin)."""
    from lts.space.config import config_from_dict

    if path == "-":
        text, source = sys.stdin.read(), "<stdin>"
    else:
        p = Path(path)
        if not p.is_file():
            raise LtsError(f"{path}: no such file")
        text, source = p.read_text(), path
    try:
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise LtsError(f"{source}: line {n}: malformed JSON ({exc.msg})") from None
    if not items:
        raise LtsError(f"{source}: no config found")
    for i, item in enumerate(items):
        where = source if len(items) == 1 else f"{source}: config {i + 1}"
        try:
            yield where, config_from_dict(item)
        except LtsError as exc:
            raise LtsError(f"{where}: {exc}") from None


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
    from lts.proxies.params import breakdown, proxy_values
    from lts.space.ranges import load_space

    space = load_space(args.space) if args.space else None
    for where, cfg in _read_configs(args.file):
        if space is not None:
            try:
                space.check(cfg)
            except LtsError as exc:
                raise LtsError(f"{where}: {exc}") from None
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lts", description="Training-free, hardware-aware Transformer LM search.")
    sub = p.add_subparsers(dest="command", required=True)

    space = sub.add_parser("space", help="search spaces").add_subparsers(dest="space_cmd", required=True)
    show = space.add_parser("show", help="print a space's ranges (family name or JSON/YAML file)")
    show.add_argument("space")
    show.set_defaults(func=cmd_space_show)

    sample = sub.add_parser("sample", help="sample architectures (JSON lines)")
    sample.add_argument("--space", default="gpt2", help="gpt2, transxl or a space file")
    sample.add_argument("-n", type=int, default=5)
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "n", 1) is not None and getattr(args, "n", 1) < 0:
        parser.error("-n must be >= 0")
    try:
        args.func(args)
    except LtsError as exc:
        print(f"lts: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lts sample -n 1000 | head` is normal use
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
