"""The PyTorch backend: standalone torch source for a spec, and modules built from it.

`definitions.py` translates the spec's definitions (one class per block, the spec's params as
constructor arguments). Where it cannot yet translate a construct, `snapshot.py` writes the
compiled expansion instead, and the file's header says why.
"""

from __future__ import annotations

import ast
import linecache
from typing import Any

from .definitions import DefinitionGenerator
from .pyexpr import Unsupported
from .runtime import camel
from .snapshot import GenerationError
from .snapshot import generate as snapshot

__all__ = ["GenerationError", "build_module", "generate", "parametric"]


def parametric(model: Any, spec_file: str) -> tuple[str, bool]:
    """(source, whether its model class takes the spec's params)."""
    try:
        source = DefinitionGenerator(model.graph.doc, model).source(spec_file)
        ast.parse(source)
        return source, True
    except (Unsupported, KeyError, SyntaxError) as exc:
        return snapshot(model, spec_file, str(exc) or type(exc).__name__), False


def generate(model: Any, spec_file: str) -> str:
    """Python source of a torch module for `model`, checked to parse."""
    return parametric(model, spec_file)[0]


def build_module(model: Any) -> Any:
    """Execute the generated source and instantiate the model class at the model's params.

    The source is registered with linecache under a stable name, so `inspect.getsource` and
    `torch.jit.script` find it as they would in a file.
    """
    source, takes_params = parametric(model, model.graph.doc.file)
    filename = f"<cnngraph build {model.name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module_name = f"cnngraph_build_{camel(model.name)}"
    namespace: dict[str, Any] = {"__name__": module_name}
    exec(compile(source, filename, "exec"), namespace)
    cls = namespace[camel(model.name)]
    if not takes_params:
        return cls()
    return cls(**{_py(k): _as_tuple(v) for k, v in model.graph.params.items()})


def _py(name: str) -> str:
    from .writer import python_name

    return python_name(name)


def _as_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value
