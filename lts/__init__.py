"""lts: training-free, hardware-aware architecture search for Transformer language models.

Importing lts registers its model families with ``transformers``' Auto classes, lazily: an import
hook waits for ``transformers``' auto modules (importing ``transformers`` here would cost every lts
command 2-6 s), then calls :mod:`lts.models.hf_auto`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any, Callable

__version__ = "0.1.0"

_CONFIG_AUTO = "transformers.models.auto.configuration_auto"
_MODEL_AUTO = "transformers.models.auto.modeling_auto"


def _register(model_classes: bool) -> None:
    try:
        import lts.models.hf_auto as hf_auto  # the one upward import of the package root (tests/test_layers.py)

        hf_auto.register() if model_classes else hf_auto.register_configs()
    except Exception as exc:  # a transformers lts cannot work with must not break transformers itself
        warnings.warn(f"lts: could not register its models with transformers ({type(exc).__name__}: {exc})",
                      stacklevel=2)


class _ThenLoader(importlib.abc.Loader):
    """The module's own loader, then ``then()`` once the module has run; anything else is the loader's."""

    def __init__(self, inner: Any, then: Callable[[], None]) -> None:
        self._inner, self._then = inner, then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        self._then()

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, is_package, ...
        return getattr(self._inner, name)


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of transformers' two auto modules, once each."""

    def __init__(self) -> None:
        self.pending = {_CONFIG_AUTO: False, _MODEL_AUTO: True}  # module -> register model classes too

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in self.pending:
            return None
        model_classes = self.pending.pop(name)
        if not self.pending and self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _ThenLoader(spec.loader, lambda: _register(model_classes))
                return spec
        return None


def _arm() -> None:
    if any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        return
    if _MODEL_AUTO in sys.modules:  # transformers came first
        _register(model_classes=True)
        return
    hook = _RegisterAfterImport()
    if _CONFIG_AUTO in sys.modules:
        _register(model_classes=False)
        del hook.pending[_CONFIG_AUTO]
    sys.meta_path.insert(0, hook)


_arm()
