"""What the generator knows while it writes: tensors as code, block classes, the class being
written, and symbolic op fields."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ... import symbolic as sym
from ...ops import Op
from ...ops.base import ShapeCode
from ...spec import ENTRY_KEYS, Init
from ...symbolic import Expr
from . import pyexpr
from .pyexpr import Unsupported
from .runtime import camel
from .spec_layers import (
    Param,
    parse_params,
    template_fields,
)
from .writer import Names, Writer, literal_text, python_name

if TYPE_CHECKING:
    from ...model import Model


@dataclass
class Tensor:
    """A value in forward, and what `__init__` knows of it."""

    var: str  # its variable in forward
    shape: ShapeCode  # its per-sample shape, as code for __init__
    keeps: Expr | None  # whether it has the block input's height and width, for every size
    stride: Expr | None  # by how much the block has divided height and width
    overwritable: bool = False  # whether an in-place add may write into it


@dataclass
class BlockClass:
    name: str  # the class name
    params: list[Param]
    uses: list[str]  # model params it reads, itself or through the blocks it calls
    inputs: list[str]  # its input tensors' names in forward
    out: Expr | None = None  # output channels over its own argument names, if expressible
    keeps: Expr | None = None
    stride: Expr | None = None
    overwritable: bool = False
    source: str = ""
    # output height and width over its arguments and `in_height`/`in_width`, if expressible
    spatial: tuple[Expr | None, ...] = ()
    sized: bool = False  # takes `in_size`: its layers read the input's height and width


@dataclass
class Ctx:
    """One class being written: names in scope for expressions, and its two methods."""

    env: dict[str, Expr]
    names: Names  # __init__ locals
    init: Writer
    fwd_names: Names = field(default_factory=Names)
    fwd: Writer = field(default_factory=Writer)
    attributes: dict[str, str] = field(default_factory=dict)  # attribute -> annotation
    annotated: dict[str, str] = field(default_factory=dict)  # __init__ local -> annotation
    class_name: str = ""
    # the variables the writer made for channel counts, heights and widths (never a param's)
    counters: set[str] = field(default_factory=set)

    def declare(self, wanted: str, annotation: str, value: str | None = None) -> str:
        """A fresh __init__ local declared with `annotation` (and assigned `value`, if given),
        declared once: a name freed by an earlier loop is reused only with the same type, as
        mypy rejects a second declaration."""
        name = self.names.fresh(wanted)
        while self.annotated.get(name, annotation) != annotation:
            name = self.names.fresh(wanted)
        assign = "" if value is None else f" = {value}"
        if name not in self.annotated:
            self.init.line(f"{name}: {annotation}{assign}")
            self.annotated[name] = annotation
        elif assign:
            self.init.line(f"{name}{assign}")
        return name


def as_field(cls: type[Op], name: str, value: Any) -> Any:
    """A literal as the op's field holds it: `3` for a pair field is (3, 3), lists tuples."""
    if isinstance(value, list):
        value = tuple(value)
    info = cls.model_fields.get(name)
    pair = info is not None and "tuple" in str(info.annotation)
    if pair and isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    return value


class Code:
    """A field value inside a symbolic op instance: prints as its source text."""

    def __init__(self, expr: Expr) -> None:
        self.expr = expr

    def __repr__(self) -> str:
        return self.expr.text

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return hash(self.expr.text)


UNKNOWN_DIM = Code(sym.code("0"))


def render(made: Any) -> str:
    parts = []
    for arg in made.args:
        items = arg.value if isinstance(arg.value, (tuple, list)) else (arg.value,)
        if any(v is UNKNOWN_DIM for v in items):
            raise Unsupported("a size that depends on the height and width of the input")
        if isinstance(arg.value, (tuple, list)) and any(isinstance(v, Code) for v in items):
            texts = [v.expr.text if isinstance(v, Code) else repr(v) for v in items]
            text = f"({', '.join(texts)}{',' if len(texts) == 1 else ''})"
        elif isinstance(arg.value, Code):
            text = arg.value.expr.text
        elif hasattr(arg.value, "func"):
            text = render(arg.value)
        else:
            if arg.omissible(arg.value):
                continue
            text = literal_text(sym.const(arg.value))
        parts.append(f"{arg.keyword}={text}" if arg.keyword else text)
    return f"{made.func}({', '.join(parts)})"


def free_names(expr: Expr) -> set[str]:
    tree = ast.parse(expr.text, mode="eval")
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - {
        "math",
        "make_divisible",
        "float32",
        "int",
        "round",
        "max",
        "min",
        "len",
        "sum",
        "abs",
        "float",
        "range",
        "True",
        "False",
        "None",
    } | ({"self"} if "self." in expr.text else set())


def substitute(expr: Expr | None, mapping: Mapping[str, Expr]) -> Expr | None:
    if expr is None:
        return None
    try:
        return pyexpr.translate(expr.text, {**mapping, **helpers()}, set())
    except Unsupported:
        return None


def helpers() -> dict[str, Expr]:
    return {n: sym.code(n) for n in ("math", "make_divisible", "float32")}


def callee_names(mapping: Mapping[str, Expr], cls: BlockClass, p: Param) -> dict[str, Expr]:
    """The callee's names (spec names) mapped to the caller's values, for a computed default."""
    out = {**helpers()}
    for q in cls.params:
        if q.py in mapping:
            out[q.name] = mapping[q.py]
    for g in cls.uses:
        if python_name(g) in mapping:
            out[g] = mapping[python_name(g)]
    out["in_channels"] = mapping["in_channels"]
    return out


def defined_in(expr: Expr, block: Writer) -> bool:
    """Whether an expression reads a variable that `block` assigns."""
    assigned = {line.strip().split(" = ")[0] for line in block.lines if " = " in line}
    return bool(free_names(expr) & assigned) or "out_channels" in expr.text


class GeneratorState:
    """What the writers share for one spec: its definitions, the classes written so far and the
    names and helpers the file needs."""

    def __init__(self, model: Model, track_size: bool = False) -> None:
        # heights and widths carried through __init__ too, where a layer needs them (a linear
        # after a flatten): blocks take `in_size`, loops update `height` and `width`
        self.track_size = track_size
        self.model = model
        self.graph = model.graph
        if model.graph.definitions is None:
            raise Unsupported("a model without its definitions")
        self.spec = model.graph.definitions
        # a param set from outside (`--set`) is the file's default: the file builds that model
        self.model_params = [
            replace(p, default=self.graph.overrides[p.name], required=False, literal=True)
            if p.name in self.graph.overrides
            else p
            for p in parse_params(self.spec.params)
        ]
        self.global_names = {p.name for p in self.model_params}
        self.needs: set[str] = set()
        self.blocks: dict[str, BlockClass] = {}
        self.order: list[BlockClass] = []
        self.building: list[str] = []
        self.class_names = Names({camel(self.spec.name), "StochasticDepth"})
        self.class_names.taken.add(camel(self.spec.name) + "Outputs")
        self.modules_by_role: dict[tuple[str, ...], str] = {}  # dynamic op dicts
        self.module_dicts: list[str] = []
        self.output_types: list[str] = []
        self._uses: dict[str, set[str]] = {}
        # rule -> (class, attribute, torch class) of each layer with its own `init:`
        self.position: int | None = None  # of the numbered layer being written
        self.own_inits: dict[Init, list[tuple[str, str, str]]] = {}

    def _uses_of(self, name: str) -> set[str]:
        """Model params read by a block, directly or through the blocks it may call."""
        if name in self._uses:
            return self._uses[name]
        self._uses[name] = set()  # a guard against cycles (the compiler reports those)
        bdef = self.spec.blocks[name].model_dump(exclude_unset=True)
        own = {p.name for p in parse_params(bdef.get("params") or {})}
        found = pyexpr.names_in(bdef) | self._template_names(bdef)
        used = (found & self.global_names) - own
        for callee in self._callees(bdef):
            used |= self._uses_of(callee)
        self._uses[name] = used
        return used

    def _template_names(self, raw: Any) -> set[str]:
        if isinstance(raw, dict):
            out = set()
            for key, value in raw.items():
                if key == "names" and isinstance(value, str):
                    out |= {f.split("!")[0] for f in template_fields(value)}
                else:
                    out |= self._template_names(value)
            return out
        if isinstance(raw, list):
            return set().union(*(self._template_names(v) for v in raw)) if raw else set()
        return set()

    def _callees(self, raw: Any) -> set[str]:
        out: set[str] = set()
        if isinstance(raw, dict):
            block = raw.get("block")
            if isinstance(block, str):
                out |= self._candidates(block)
            for value in raw.values():
                out |= self._callees(value)
        elif isinstance(raw, list):
            for value in raw:
                out |= self._callees(value)
        return out

    def _candidates(self, block: str, entry: Mapping[str, Any] | None = None) -> set[str]:
        """The blocks a `block:` value may name: itself, or for an expression every block that
        takes the call's arguments (and, spread, has a list of layers)."""
        if not block.startswith("$"):
            return {block} if block in self.spec.blocks else set()
        if entry is None:
            return set(self.spec.blocks)
        given = {k for k in entry if k not in ENTRY_KEYS}
        out = set()
        for name, bdef in self.spec.blocks.items():
            params = parse_params(bdef.params)
            if not given <= {p.name for p in params}:
                continue
            if any(p.required and p.name not in given for p in params):
                continue
            if entry.get("spread") and not isinstance(bdef.layers, list):
                continue
            out.add(name)
        return out

    def block(self, name: str) -> BlockClass:  # DefinitionGenerator writes block classes
        raise NotImplementedError
