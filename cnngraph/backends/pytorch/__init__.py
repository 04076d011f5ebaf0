"""The PyTorch backend: standalone torch source for a spec, and modules built from it.

`definitions.py` translates the spec's definitions (one class per block, the spec's params as
constructor arguments). Where it cannot yet translate a construct, `snapshot.py` writes the
compiled expansion instead, and the file's header says why.
"""

from __future__ import annotations

import ast
import hashlib
import linecache
import sys
import types
from typing import TYPE_CHECKING, Any

from .definitions import DefinitionGenerator
from .pyexpr import Unsupported
from .runtime import camel
from .snapshot import GenerationError
from .snapshot import generate as snapshot
from .writer import python_name

if TYPE_CHECKING:
    from ...model import Model

__all__ = ["GenerationError", "build_module", "generate", "load_source", "parametric"]


def parametric(model: Model, spec_file: str) -> tuple[str, bool]:
    """(source, whether its model class takes the spec's params)."""
    reason = ""
    # sizes are carried through __init__ only where a layer needs them
    for track_size in (False, True):
        try:
            generator = DefinitionGenerator(model, track_size)
            source = generator.source(spec_file)
            ast.parse(source)
            return source, True
        except (Unsupported, KeyError, SyntaxError) as exc:
            reason = str(exc) or type(exc).__name__
            if "height and width" not in reason:
                break
    return snapshot(model, spec_file, reason), False


def generate(model: Model, spec_file: str) -> str:
    """Python source of a torch module for `model`, checked to parse."""
    return parametric(model, spec_file)[0]


def build_module(model: Model) -> Any:
    """Execute the generated source and instantiate the model class at the model's params."""
    source, takes_params = parametric(model, model.graph.doc.file)
    cls = getattr(load_source(source, model.name), camel(model.name))
    if not takes_params:
        return cls()
    return cls(**{python_name(k): _as_tuple(v) for k, v in model.graph.params.items()})


def load_source(source: str, name: str) -> types.ModuleType:
    """The generated source as a module, as if imported from a file.

    It is registered in `sys.modules` and its text in `linecache`, under names that carry a
    digest of the source (two specs named alike never shadow each other), so `inspect.getsource`
    and `torch.jit.script` find the code. Its module classes pickle by value: a pickle (or
    `torch.save(module)`) holds the source and rebuilds the classes where it is loaded, wherever
    cnngraph is installed; `copy.deepcopy` keeps the classes.
    """
    digest = _digest(source)
    module_name = f"cnngraph_build_{python_name(name)}_{digest}"
    built = sys.modules.get(module_name)
    if built is not None:
        return built
    filename = _file(source, name)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    built = types.ModuleType(module_name)
    built.__file__ = filename
    exec(compile(source, filename, "exec"), built.__dict__)
    for value in list(vars(built).values()):
        is_module_class = isinstance(value, type) and hasattr(value, "forward")
        if is_module_class and value.__module__ == module_name:
            value.__reduce_ex__ = _by_value(source, name)
    sys.modules[module_name] = built
    return built


def _by_value(source: str, name: str) -> Any:
    def reduce(self: Any, protocol: int) -> Any:
        if getattr(sys.modules.get(type(self).__module__), "__file__", None) != _file(source, name):
            return object.__reduce_ex__(self, protocol)  # a user's subclass: by reference
        return (_rebuilt, (source, name, type(self).__qualname__), self.__getstate__())

    return reduce


def _rebuilt(source: str, name: str, qualname: str) -> Any:
    """An empty instance of a generated class, for pickle to fill with the saved state."""
    cls = getattr(load_source(source, name), qualname)
    return cls.__new__(cls)


def _as_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def _file(source: str, name: str) -> str:
    """The name the source is registered under in linecache (and the module's __file__)."""
    return f"<cnngraph build {name} {_digest(source)}>"
