"""The package layers (ARCHITECTURE.md): no module imports one from a higher layer.

An AST walk over ``lts/`` and ``dashboard/`` reads every import, at module level and inside functions
(lazy imports count: they are dependencies all the same; so do ``TYPE_CHECKING`` ones). A module's
layer is that of the most specific prefix in :data:`LAYERS` (``lts.X.cli`` modules: the CLI layer).
A module may import from a lower layer, or from its own package (``lts.X``) in the same layer; a
package split across layers (``lts.proxies``, ``lts.flexibert``) may not import upwards within
itself either. Third-party imports (torch, transformers, scipy, pandas, plotly, ...) are allowed
anywhere, lazily or not; ``streamlit`` only under ``dashboard/``.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "dashboard"

# Imports against the layers that are still to be removed: (importer, imported) module pairs. The
# list may only shrink: an entry that no longer exists fails the test, so delete it when its import goes.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()

# Upward imports by design, each with its reason; an entry whose import is gone fails too.
DELIBERATE: dict[tuple[str, str], str] = {
    ("lts", "lts.models.hf_auto"): "importing lts registers its families with transformers' Auto classes; the "
                                   "import runs only when transformers' auto modules load (lts/__init__.py)",
}

# Module prefix -> layer (low -> high). The most specific prefix wins. A half layer (0.5, 1.5, 4.5, 7.5) sits
# just above its whole one: its packages may use that layer's (lts.flexibert's configs use lts.space's).
LAYERS: dict[str, float] = {
    # 0 base: errors; 0.5 child-process lifetime, the job lifecycle, package data
    "lts": 0, "lts.errors": 0,
    "lts.lifetime": 0.5, "lts.jobs": 0.5, "lts.data": 0.5,
    # 1 configs, spaces and their analytic counts; corpora and tokenizers; Pareto tools (numpy, pymoo).
    # 1.5 FlexiBERT's configs, space, counts and record files
    "lts.space": 1, "lts.text": 1, "lts.pareto": 1,
    "lts.flexibert": 1.5,
    # 2 models
    "lts.models": 2, "lts.flexibert.model": 2,
    # 3 cost measurement; the proxies (registry, compute, zerolm, zero_cost, encoders, tokens); LTS's
    # published results. None of the three imports another, nor the store: they compute, it keeps.
    "lts.cost": 3, "lts.proxies": 3, "lts.reference": 3,
    # 4 storage: every SQL statement (repositories per table group, migrations, results bundles)
    "lts.store": 4,
    # 4.5 objectives and constraints (the built-in ones and every registered proxy), for search and surrogates
    "lts.objectives": 4.5,
    # 5 cost surrogates
    "lts.surrogate": 5,
    # 6 search
    "lts.search": 6,
    # 7 validation runs; proxies compared on trained models. 7.5 DARTS (trains with lts.validate's
    # training), the FlexiBERT benchmark (ranks with lts.validate's correlations)
    "lts.validate": 7, "lts.proxies.compare": 7,
    "lts.darts": 7.5, "lts.flexibert.benchmark": 7.5, "lts.flexibert.ranking": 7.5,
    # 8 deciding across devices
    "lts.decide": 8,
    # 9 team use, the dashboard's read-side queries
    "lts.team": 9, "lts.explore": 9, "lts.export": 9,
    # 10 the command line: lts.cli and every lts/X/cli.py (see layer_of), one package
    "lts.cli": 10,
    # 11 the Streamlit app
    "dashboard": 11,
}
CLI_LAYER = 10
DASHBOARD_ONLY = ("streamlit",)  # third-party packages only dashboard/ may import


def layer_of(module: str) -> float:
    """The layer of ``module``; KeyError for a module no entry covers (``lts`` covers only the package itself)."""
    parts = module.split(".")
    if module.startswith("lts.") and parts[-1] == "cli" and len(parts) > 2:
        return CLI_LAYER
    for i in range(len(parts), 1 if parts[0] == "lts" and len(parts) > 1 else 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f"{module}: no layer (add it to LAYERS in tests/test_layers.py and to ARCHITECTURE.md)")


def package_of(module: str) -> str:
    """``lts.X`` (the CLI modules together: ``lts.cli``), or ``dashboard``."""
    parts = module.split(".")
    if parts[0] != "lts":
        return parts[0]
    return "lts.cli" if layer_of(module) == CLI_LAYER else ".".join(parts[:2])


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@lru_cache(maxsize=1)
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for base in ("lts", "dashboard") for p in sorted((REPO / base).rglob("*.py"))}


@lru_cache(maxsize=1)
def _dashboard_top_level() -> frozenset[str]:
    """What dashboard pages import as top-level modules (``common``, ``team_page``, ...): app.py puts
    ``dashboard/`` on sys.path."""
    return frozenset(p.stem for p in DASHBOARD.glob("*.py"))


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import in ``path``; ``from pkg import name`` counts as
    ``pkg.name`` when that is a module of the repository, else as ``pkg``."""
    known = _modules()
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path.name == "__init__.py", node)
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((sub if sub in known else target, node.lineno))
    return out


def _as_repo_module(name: str) -> str | None:
    """The repository module ``name`` refers to (a dashboard top-level name: ``dashboard.NAME``), or None."""
    if name == "lts" or name.startswith("lts.") or name == "dashboard" or name.startswith("dashboard."):
        return name
    top = name.split(".")[0]
    return f"dashboard.{name}" if top in _dashboard_top_level() else None


def violations() -> list[tuple[tuple[str, str], str]]:
    """Every import that breaks the layers: its (importer, imported) pair and a readable line."""
    out: list[tuple[tuple[str, str], str]] = []
    for module, path in _modules().items():
        try:
            src_layer = layer_of(module)
        except KeyError:
            continue  # test_every_module_has_a_layer names it
        for name, lineno in imports(module, path):
            where = f"{path.relative_to(REPO)}:{lineno}"
            if name.split(".")[0] in DASHBOARD_ONLY:
                if not module.startswith("dashboard"):
                    out.append(((module, name.split(".")[0]), f"{where}: {module} imports {name} (only dashboard/ may)"))
                continue
            target = _as_repo_module(name)
            if target is None or target == module:
                continue
            try:
                layer_of(target)
            except KeyError:
                continue  # test_every_module_has_a_layer names it
            if breaks(module, target):
                out.append(((module, target),
                            f"{where}: {module} (layer {src_layer:g}) imports {target} (layer {layer_of(target):g})"))
    return out


def breaks(importer: str, imported: str) -> bool:
    """Whether ``importer`` may not import ``imported``: a higher layer, or the same layer of another package."""
    src, dst = layer_of(importer), layer_of(imported)
    return dst > src or (dst == src and package_of(imported) != package_of(importer))


def test_every_module_has_a_layer():
    missing = []
    for m in _modules():
        try:
            layer_of(m)
        except KeyError as exc:
            missing.append(str(exc))
    assert not missing, "\n".join(missing)
    assert layer_of("lts.proxies.cli") == CLI_LAYER and layer_of("lts.proxies.registry") == 3
    assert layer_of("lts.flexibert.model") == 2 and layer_of("lts.flexibert.config") == 1.5
    assert package_of("lts.validate.cli") == package_of("lts.cli") == "lts.cli"


def test_no_module_imports_a_higher_layer():
    new = sorted(line for pair, line in violations() if pair not in KNOWN_VIOLATIONS and pair not in DELIBERATE)
    assert not new, "imports against the layers (ARCHITECTURE.md):\n" + "\n".join(new)


def test_the_known_violations_only_shrink():
    gone = sorted((KNOWN_VIOLATIONS | set(DELIBERATE)) - {pair for pair, _ in violations()})
    assert not gone, f"no longer imported: delete from KNOWN_VIOLATIONS in {__file__}: {gone}"


def test_the_check_sees_lazy_relative_and_dashboard_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from . import registry\n\ndef f():\n    from ..store import db\n    import team_page\n")
    names = [n for n, _ in imports("lts.proxies.compute", src)]
    assert names == ["lts.proxies.registry", "lts.store.db", "team_page"]
    assert _as_repo_module("team_page") == "dashboard.team_page" and _as_repo_module("torch") is None


def test_the_rule():
    assert breaks("lts.store.db", "lts.search.runner") and breaks("lts.proxies.registry", "lts.proxies.compare")
    assert breaks("lts.proxies.tokens", "lts.reference") and breaks("lts.validate.page", "dashboard.team_page")
    assert not breaks("lts.search.runner", "lts.store.db") and not breaks("lts.proxies.compare", "lts.proxies.registry")
    assert not breaks("lts.darts.cli", "lts.validate.cli") and not breaks("dashboard.views.search", "lts.cli")


# SQL text: a statement keyword followed by what makes it a statement (not prose such as "select runs").
_SQL = __import__("re").compile(
    r"\b(SELECT\s+[\w*(].*\bFROM\b|INSERT\s+(OR\s+\w+\s+)?INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b|"
    r"CREATE\s+(TABLE|INDEX)\b|ALTER\s+TABLE\b|PRAGMA\s+\w+)", __import__("re").S)
_DB_CALLS = ("execute", "executemany", "executescript", "read_sql_query", "read_sql")


def test_sql_only_in_the_store():
    """The storage layer owns every statement (ARCHITECTURE.md): outside lts/store/ no string holds SQL
    and nothing calls execute()/read_sql (the acceptance grep: ``grep -rn "execute(" lts dashboard``)."""
    found = []
    for path in sorted(list((REPO / "lts").rglob("*.py")) + list(DASHBOARD.rglob("*.py"))):
        rel = path.relative_to(REPO)
        if rel.parts[:2] == ("lts", "store"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.search(node.value):
                found.append(f"{rel}:{node.lineno}: SQL text {node.value[:60]!r}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _DB_CALLS):
                found.append(f"{rel}:{node.lineno}: .{node.func.attr}()")
    assert not found, "\n".join(found)
