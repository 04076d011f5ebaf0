"""Torch source from the spec's definitions, as a compiler translates functions.

A block definition becomes one class whose keyword arguments are the block's params (with the
spec's defaults) and the model params it reads; its input channel count comes first, as
torchvision passes `inplanes`. `repeat:` and `for:` become loops, `if:` conditionals, `names:`
f-strings, per-repeat values `(2, 1)[min(i, 1)]`, and the channel count is carried through
`__init__` by the ops' own rules (`Op.shape_rule`). The model class takes every model param, so
the file built at the defaults builds any member of a family.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ... import symbolic as sym
from ...expr import source_of
from ...ops import OPS, Op
from ...ops.base import Fields, ShapeCode, literal
from ...ops.conv import one_stride
from ...source import Document
from ...spec import BlockDef, ResidualSpec, SpecFile, init_rule
from ...symbolic import Expr
from . import pyexpr
from .pyexpr import Unsupported
from .runtime import (
    MAKE_DIVISIBLE,
    STOCHASTIC_DEPTH,
    camel,
    header,
    init_lines,
    sanitize,
)
from .writer import Names, Writer, python_name

ENTRY_KEYS = frozenset({"op", "block", "from", "repeat", "for", "names", "spread", "if", "init"})
_SEQUENCE = " sequence"


@dataclass
class Tensor:
    """A value in forward, and what `__init__` knows of it."""

    var: str  # its variable in forward
    shape: ShapeCode  # its per-sample shape, as code for __init__
    keeps: Expr | None  # whether it has the block input's height and width, for every size
    stride: Expr | None  # by how much the block has divided height and width
    overwritable: bool = False  # whether an in-place add may write into it


@dataclass
class Param:
    name: str  # as the spec names it
    py: str  # as the generated code names it
    type: str
    default: Any
    required: bool

    @property
    def computed(self) -> bool:
        """A default written as an expression: computed in __init__ when not given."""
        return not self.required and pyexpr.names_in(self.default) != set()


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


@dataclass
class Ctx:
    """One class being written: names in scope for expressions, and its two methods."""

    env: dict[str, Expr]
    names: Names  # __init__ locals
    init: Writer
    fwd_names: Names = field(default_factory=Names)
    fwd: Writer = field(default_factory=Writer)
    attributes: dict[str, str] = field(default_factory=dict)  # attribute -> annotation


def _entry(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str) and not raw.startswith("$"):
        return {"op": raw}
    if isinstance(raw, list):
        return {_SEQUENCE: raw}
    if isinstance(raw, dict):
        return raw
    raise Unsupported(f"a layer written as {raw!r}")


def _pairs(layers: Any) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(name or None for a numbered layer, entry) in order."""
    if isinstance(layers, dict):
        for key, raw in layers.items():
            yield key, _entry(raw)
    elif isinstance(layers, list):
        for raw in layers:
            yield None, _entry(raw)
    else:
        raise Unsupported("a body that is neither a list nor a mapping")


def _type_of(value: Any) -> str:
    for name, kinds in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(value, kinds):
            return name
    return "list" if isinstance(value, list) else "any"


def _hint(ptype: str, values: Sequence[Any]) -> str:
    """A type hint for a param from its declared type, or from the values it takes."""
    if ptype in ("int", "float", "bool", "str"):
        return ptype
    present = [v for v in values if v is not None]
    if ptype == "any" and present:
        kinds = {_type_of(v) for v in present}
        if len(kinds) == 1 and kinds <= {"int", "float", "bool", "str"}:
            return kinds.pop()
        if kinds <= {"int", "float"} and kinds:
            return "float"
        if kinds == {"list"}:
            ptype = "list"
    if ptype == "list":
        items = [x for v in present if isinstance(v, (list, tuple)) for x in v]
        kinds = {_type_of(x) for x in items}
        if items and kinds == {"int"}:
            return "Sequence[int]"
        if items and kinds <= {"int", "float"}:
            return "Sequence[float]"
        return "Sequence[Any]"
    return "Any"


def _parse_params(raw: Mapping[str, Any]) -> list[Param]:
    out = []
    for name, value in raw.items():
        py = python_name(name)
        if isinstance(value, str) and value in ("int", "float", "bool", "str", "list", "any"):
            out.append(Param(name, py, value, None, True))
        elif isinstance(value, dict) and "type" in value:
            out.append(Param(name, py, value["type"], value.get("default"), "default" not in value))
        else:
            ptype = "any" if pyexpr.names_in(value) else _type_of(value)
            out.append(Param(name, py, ptype, value, False))
    return out


class DefinitionGenerator:
    """Writes the generated file for one spec (see the module docstring)."""

    def __init__(self, doc: Document, model: Any) -> None:
        self.doc = doc
        self.model = model
        self.graph = model.graph
        self.spec = SpecFile.model_validate(doc.data)
        self.model_params = _parse_params(self.spec.params)
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

    # ---- the file ---------------------------------------------------------------------------

    def source(self, spec_file: str) -> str:
        root = self._root()
        parts = []
        if "make_divisible" in self.needs:
            parts.append(MAKE_DIVISIBLE)
        if "StochasticDepth" in self.needs:
            parts.append(STOCHASTIC_DEPTH)
        parts += self.output_types
        parts += [b.source for b in self.order]
        parts.append(root)
        text = header(self.spec.name, spec_file, self.needs).rstrip("\n") + "\n"
        for table in self.module_dicts:  # statements follow the imports after one blank line
            text += "\n" + table.rstrip("\n") + "\n"
        return "\n\n".join([text, *(p.rstrip("\n") + "\n" for p in parts)])

    # ---- which model params a block reads ----------------------------------------------------

    def _uses_of(self, name: str) -> set[str]:
        """Model params read by a block, directly or through the blocks it may call."""
        if name in self._uses:
            return self._uses[name]
        self._uses[name] = set()  # a guard against cycles (the compiler reports those)
        bdef = self.doc.data["blocks"][name]
        own = {p.name for p in _parse_params(bdef.get("params") or {})}
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
                    out |= {f.split("!")[0] for f in _template_fields(value)}
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
            params = _parse_params(bdef.params)
            if not given <= {p.name for p in params}:
                continue
            if any(p.required and p.name not in given for p in params):
                continue
            if entry.get("spread") and not isinstance(bdef.layers, list):
                continue
            out.add(name)
        return out

    # ---- classes ------------------------------------------------------------------------------

    def block(self, name: str) -> BlockClass:
        if name in self.blocks:
            return self.blocks[name]
        if name in self.building:
            raise Unsupported(f"block '{name}' calls itself")
        self.building.append(name)
        try:
            made = self._block_class(name)
        finally:
            self.building.pop()
        self.blocks[name] = made
        self.order.append(made)
        return made

    def _block_class(self, name: str) -> BlockClass:
        bdef = self.spec.blocks[name]
        raw = self.doc.data["blocks"][name]
        params = _parse_params(bdef.params)
        uses = [p.name for p in self.model_params if p.name in self._uses_of(name)]
        inputs = ["x" if n == "input" else python_name(n) for n in bdef.inputs]
        made = BlockClass(self.class_names.fresh(camel(name)), params, uses, inputs)
        ctx = Ctx({}, Names(["in_channels", *inputs]), Writer())
        ctx.fwd_names = Names([*inputs])
        for g in uses:
            ctx.env[g] = sym.code(python_name(g))
            ctx.names.taken.add(python_name(g))
        ctx.env["in_channels"] = sym.code("in_channels")
        signature = ["in_channels: int", *(f"{n}_channels: int" for n in inputs[1:])]
        keywords = self._param_signature(params, self._instance_values(name), ctx)
        keywords += [f"{python_name(g)}: {self._global_hint(g)}" for g in uses]
        shape = self._input_shape(name)
        first = Tensor(inputs[0], shape, sym.const(True), sym.const(1))
        sources = [first] + [
            Tensor(n, (sym.code(f"{n}_channels"), None, None), None, None) for n in inputs[1:]
        ]
        sequential = (
            bdef.layers is not None
            and not bdef.residual
            and not bdef.gate
            and bdef.then is None
            and bdef.output is None
            and len(bdef.inputs) == 1
            and self._is_chain(bdef.layers)
        )
        if sequential:
            out = self._chain(bdef.layers, "self", first, ctx)
        else:
            out = self._block_body(bdef, raw, sources, ctx)
        channels = out.shape[0] if out.shape else None
        if channels is None:
            raise Unsupported(f"the output channels of block '{name}'")
        ctx.init.line(f"self.out_channels = {channels.text}")
        allowed = {"in_channels", *(f"{n}_channels" for n in inputs[1:])}
        allowed |= {p.py for p in params} | {python_name(g) for g in uses}
        made.out = channels if _free(channels) <= allowed else None
        made.keeps = out.keeps if out.keeps and _free(out.keeps) <= allowed else None
        made.stride = out.stride if out.stride and _free(out.stride) <= allowed else None
        made.overwritable = out.overwritable
        base = "nn.Sequential" if sequential else "nn.Module"
        doc = f'"""Block `{sanitize(name)}` of the spec."""'
        made.source = self._class_text(made.name, base, doc, signature, keywords, ctx, made)
        return made

    def _instance_values(self, block: str) -> dict[str, list[Any]]:
        """Each param's values in the compiled instances (for type hints)."""
        out: dict[str, list[Any]] = {}
        for scope in self.graph.scopes.values():
            if scope.kind == "block" and scope.label == block:
                for key, value in scope.params.items():
                    out.setdefault(key, []).append(value)
        return out

    def _input_shape(self, block: str) -> ShapeCode:
        """The rank of the block's input, from an instance (3 where none is compiled)."""
        for scope in self.graph.scopes.values():
            if scope.kind == "block" and scope.label == block and scope.inputs:
                info = self.model._layers.get(scope.inputs[0])
                if info is not None and len(info.shape) == 1:
                    return (sym.code("in_channels"),)
        return (sym.code("in_channels"), None, None)

    def _global_hint(self, name: str) -> str:
        p = next(p for p in self.model_params if p.name == name)
        return _hint(p.type, [self.graph.params.get(name)])

    def _param_signature(
        self, params: list[Param], values: Mapping[str, list[Any]], ctx: Ctx
    ) -> list[str]:
        """Keyword arguments, and the __init__ lines computing defaults written as expressions."""
        out = []
        for p in params:
            hint = _hint(p.type, values.get(p.name, []))
            if p.required:
                out.append(f"{p.py}: {hint}")
            elif p.computed:
                out.append(f"{p.py}: {hint} | None = None")
                default = pyexpr.value(p.default, ctx.env, self.needs)
                ctx.init.line(f"if {p.py} is None:")
                with ctx.init.indent():
                    ctx.init.line(f"{p.py} = {default.text}")
            else:
                out.append(_default_text(f"{p.py}: {hint}", sym.const(p.default)))
            ctx.env[p.name] = sym.code(p.py)
            ctx.names.taken.add(p.py)
        if any("Sequence" in line for line in out):
            self.needs.add("Sequence")
        if any("Any" in line for line in out):
            self.needs.add("Any")
        return out

    def _class_text(
        self,
        name: str,
        base: str,
        doc: str,
        positional: list[str],
        keywords: list[str],
        ctx: Ctx,
        block: BlockClass | None,
        returns: str = "torch.Tensor",
        methods: Sequence[str] = (),
    ) -> str:
        w = Writer()
        w.line(f"class {name}({base}):")
        with w.indent():
            w.line(doc)
            w.line("")
            args = ["self", *positional] + (["*", *keywords] if keywords else [])
            one_line = f"def __init__({', '.join(args)}) -> None:"
            if len(one_line) + 4 <= 99 and "\n" not in one_line:
                w.line(one_line)
            else:
                w.line("def __init__(")
                with w.indent():
                    for arg in args:
                        w.line(f"{arg},")
                w.line(") -> None:")
            with w.indent():
                w.line("super().__init__()")
                w.extend(ctx.init)
            for method in methods:
                w.line("")
                w.line(method)
            if base != "nn.Sequential":
                inputs = block.inputs if block else ["x"]
                w.line("")
                signature = ", ".join(f"{n}: torch.Tensor" for n in inputs)
                w.line(f"def forward(self, {signature}) -> {returns}:")
                with w.indent():
                    w.extend(ctx.fwd)
        return "\n".join(_wrap_long(line) for line in w.lines) + "\n"

    # ---- bodies -------------------------------------------------------------------------------

    def _is_chain(self, layers: Any) -> bool:
        """Whether every layer takes the previous one's result and is a module."""
        for _key, entry in _pairs(layers):
            if "from" in entry:
                return False
            op = entry.get("op")
            if isinstance(op, str) and not op.startswith("$"):
                cls = OPS.get(op)
                if cls is None or not cls.has_module():
                    return False
        return True

    def _chain(self, layers: Any, target: str, start: Tensor, ctx: Ctx) -> Tensor:
        """Layers built into an nn.Sequential `target`, in order; returns the result."""
        current = start
        for key, entry in _pairs(layers):
            current = self._chain_entry(key, entry, target, current, ctx)
        return current

    def _chain_entry(
        self, key: str | None, entry: dict[str, Any], target: str, current: Tensor, ctx: Ctx
    ) -> Tensor:
        cond = self._condition(entry, ctx)
        if cond is not None and cond.constant and not cond.value:
            return current
        if cond is not None and not cond.constant:
            outer, inner = ctx.init, Writer()
            ctx.init = inner
            after = self._chain_copies(key, entry, target, current, ctx)
            ctx.init = outer
            new = after.shape[0]
            if new is not None and _defined_in(new, inner):
                current = self._materialize(current, ctx)
                inner.line(f"{current.shape[0].text} = {new.text}")  # type: ignore[union-attr]
                after = Tensor(
                    after.var, (current.shape[0], *after.shape[1:]), after.keeps, after.stride
                )
            ctx.init.line(f"if {cond.text}:")
            with ctx.init.indent():
                ctx.init.extend(inner)
            return self._merge_conditional(cond, current, after)
        return self._chain_copies(key, entry, target, current, ctx)

    def _chain_copies(
        self, key: str | None, entry: dict[str, Any], target: str, current: Tensor, ctx: Ctx
    ) -> Tensor:
        loop = self._loop(entry, ctx)
        if loop is None:
            if entry.get("spread"):
                return self._spread(entry, target, current, ctx, None)
            if key is not None and "names" not in entry:
                return self._add_to(target, key, entry, current, ctx, None)
            return self._add_to(target, None, entry, current, ctx, None)
        if key is not None:  # a named entry keeps its copies together under its name
            container = f"{target}.{key}" if target == "self" and key.isidentifier() else None
            if container is None:
                raise Unsupported("a repeat under a name inside a numbered sequence")
            ctx.init.line(f"{container} = nn.Sequential()")
            inner_target = container
        else:
            inner_target = target
        current = self._materialize(current, ctx)
        return self._loop_body(loop, entry, inner_target, current, ctx)

    def _loop_body(
        self,
        loop: tuple[str, dict[str, Expr], tuple[str, str] | None],
        entry: dict[str, Any],
        target: str,
        current: Tensor,
        ctx: Ctx,
    ) -> Tensor:
        """The loop's copies added to `target`, the channel variable updated per copy."""
        header_line, env, index = loop
        ctx.init.line(header_line)
        saved = dict(ctx.env)
        ctx.env.update(env)
        with ctx.init.indent():
            if entry.get("spread"):
                after = self._spread(entry, target, current, ctx, index)
            else:
                after = self._add_to(target, None, entry, current, ctx, index)
            self._assign_channels(current, after, ctx)
        ctx.env = saved
        return self._after_loop(current, after)

    def _loop(
        self, entry: dict[str, Any], ctx: Ctx
    ) -> tuple[str, dict[str, Expr], tuple[str, str] | None] | None:
        """A `for` statement for `repeat:`/`for:`: (its line, names it binds, (index var,
        count text) where per-repeat values or templates need them)."""
        needs_index = "names" in entry or any(
            isinstance(v, list) and k not in ENTRY_KEYS for k, v in entry.items()
        )
        if "repeat" in entry:
            count = pyexpr.value(entry["repeat"], ctx.env, self.needs)
            i = ctx.names.fresh("i") if needs_index else "_"
            index = (i, count.text) if needs_index else None
            return f"for {i} in range({count.text}):", {}, index
        if "for" in entry:
            text = entry["for"]
            target, _, rest = text.partition(" in ")
            var = target.strip()
            values = pyexpr.value(rest.strip(), ctx.env, self.needs)
            py = ctx.names.fresh(var)
            bound = {var: sym.code(py)}
            if needs_index:
                i = ctx.names.fresh("i")
                return (
                    f"for {i}, {py} in enumerate({values.text}):",
                    bound,
                    (i, f"len({values.text})"),
                )
            return f"for {py} in {values.text}:", bound, None
        return None

    def _spread(
        self,
        entry: dict[str, Any],
        target: str,
        current: Tensor,
        ctx: Ctx,
        index: tuple[str, str] | None,
    ) -> Tensor:
        """A block's layers placed into the enclosing list, with its params as locals."""
        block = entry["block"]
        names = sorted(self._candidates(block, entry))
        if len(names) == 1:
            return self._spread_one(names[0], entry, target, current, ctx, index)
        choice = pyexpr.value(block, ctx.env, self.needs)
        current = self._materialize(current, ctx)
        results = []
        for n, name in enumerate(names):
            ctx.init.line(f"{'if' if n == 0 else 'elif'} {choice.text} == {name!r}:")
            with ctx.init.indent():
                after = self._spread_one(name, entry, target, current, ctx, index)
                self._assign_channels(current, after, ctx)
                results.append(after)
        ctx.init.line("else:")
        with ctx.init.indent():
            ctx.init.line(f'raise ValueError(f"no block {{{choice.text}!r}}")')
        return self._after_loop(current, results[0])

    def _spread_one(
        self,
        name: str,
        entry: dict[str, Any],
        target: str,
        current: Tensor,
        ctx: Ctx,
        index: tuple[str, str] | None,
    ) -> Tensor:
        bdef = self.spec.blocks[name]
        if not isinstance(bdef.layers, list):
            raise Unsupported(f"spreading block '{name}'")
        saved = dict(ctx.env)
        env = {g: sym.code(python_name(g)) for g in self.global_names}
        env = {k: v for k, v in saved.items() if k in self.global_names} or env
        env["in_channels"] = current.shape[0] if current.shape[0] is not None else sym.code("0")
        for p in _parse_params(bdef.params):
            if p.name in entry:
                val = self._argument(entry[p.name], p, ctx, index)
            elif p.required:
                raise Unsupported(f"block '{name}' called without '{p.name}'")
            else:
                val = pyexpr.value(p.default, env, self.needs)
            if not val.constant:
                local = ctx.names.fresh(p.name)
                ctx.init.line(f"{local} = {val.text}")
                val = sym.code(local)
            env[p.name] = val
        ctx.env = env
        try:
            return self._chain(bdef.layers, target, current, ctx)
        finally:
            ctx.env = saved

    def _argument(self, raw: Any, p: Param, ctx: Ctx, index: tuple[str, str] | None) -> Expr:
        """A block call's value for `p`: a list gives a value per repeat unless `p` is a list."""
        if index is not None and isinstance(raw, list) and p.type not in ("list", "any"):
            values = [pyexpr.value(v, ctx.env, self.needs) for v in raw]
            i = index[0]
            if len(values) == 1:
                return values[0]
            if len(values) == 2:
                return sym.choose(sym.code(f"{i} == 0"), values[0], values[1])
            items = ", ".join(v.text for v in values)
            return sym.code(f"({items})[min({i}, {len(values) - 1})]")
        return pyexpr.value(raw, ctx.env, self.needs)

    def _add_to(
        self,
        target: str,
        key: str | None,
        entry: dict[str, Any],
        current: Tensor,
        ctx: Ctx,
        index: tuple[str, str] | None,
    ) -> Tensor:
        """One module appended to an nn.Sequential (numbered) or added under a name."""
        text, result, needs_ref = self._module(entry, [current], ctx, index)
        name = self._copy_name(entry, key, ctx, index)
        if needs_ref:
            local = ctx.names.fresh("layer")
            ctx.init.line(f"{local} = {text}")
            text = local
        if name is None:
            ctx.init.line(f"{target}.append({text})")
        elif target == "self" and name.isidentifier():
            ctx.init.line(f"self.{name} = {text}")
            text = f"self.{name}"
        else:
            ctx.init.line(
                f"{target}.add_module({name if name.startswith('f') else repr(name)}, {text})"
            )
        made: Tensor = result(text)
        return made

    def _copy_name(
        self, entry: dict[str, Any], key: str | None, ctx: Ctx, index: tuple[str, str] | None
    ) -> str | None:
        """The module's name: its key, an f-string from `names:`, or None (numbered)."""
        template = entry.get("names")
        if template is None:
            return key
        if index is None:
            raise Unsupported("`names:` without a loop")
        parts = []
        for literal_text, name, _spec, _conv in _template_parts(template):
            parts.append(literal_text.replace("{", "{{").replace("}", "}}"))
            if name is None:
                continue
            if name == "i":
                parts.append(f"{{{index[0]}}}")
            elif name == "n":
                parts.append(f"{{{index[0]} + 1}}")
            elif name in ctx.env:
                parts.append(f"{{{ctx.env[name].text}}}")
            else:
                raise Unsupported(f"`names:` field '{name}'")
        return 'f"' + "".join(parts) + '"'

    # ---- one module ---------------------------------------------------------------------------

    def _module(
        self,
        entry: dict[str, Any],
        inputs: list[Tensor],
        ctx: Ctx,
        index: tuple[str, str] | None,
        attribute: str | None = None,
    ) -> tuple[str, Any, bool]:
        """(constructor source, a function from the module's reference to its result Tensor,
        whether that function needs a reference)."""
        if "init" in entry:
            raise Unsupported("a layer's own `init:`")
        if _SEQUENCE in entry or ("layers" in entry and "op" not in entry and "block" not in entry):
            body = entry.get(_SEQUENCE, entry.get("layers"))
            if not self._is_chain(body):
                raise Unsupported("an inline sequence that is not a chain")
            local = attribute or ctx.names.fresh("layers")
            ctx.init.line(f"{local} = nn.Sequential()")
            result = self._chain(body, local, inputs[0], ctx)
            return local, lambda ref: result, False
        if "block" in entry:
            return self._block_call(entry, inputs, ctx, index)
        return self._op(entry, inputs, ctx)

    def _op(self, entry: dict[str, Any], inputs: list[Tensor], ctx: Ctx) -> tuple[str, Any, bool]:
        kind = entry["op"]
        given = {
            k: pyexpr.value(v, ctx.env, self.needs) for k, v in entry.items() if k not in ENTRY_KEYS
        }
        if isinstance(kind, str) and kind.startswith("$"):
            return self._dynamic_op(kind, given, inputs, ctx)
        cls = OPS[kind]
        text = self._op_call(cls, given, inputs)
        shape = cls.shape_rule(Fields(cls, given), [t.shape for t in inputs])
        if shape is None:
            raise Unsupported(f"the shape after a {kind}")
        first = inputs[0]
        keeps = (
            sym.all_of([first.keeps, cls.keeps_size_rule(Fields(cls, given))])
            if first.keeps is not None
            else None
        )
        stride = cls.stride_rule(Fields(cls, given))
        stride = sym.mul(first.stride, stride) if first.stride is not None and stride else None
        result = Tensor("", shape, keeps, stride, cls.output_overwritable)
        return text, lambda ref: result, False

    def _op_call(self, cls: type[Op], given: dict[str, Expr], inputs: list[Tensor]) -> str:
        """The torch constructor call for an op, from its own emission (`torch_call`), with
        the spec's expressions in place of values."""
        if cls.torch_helper:
            self.needs.add(cls.torch_helper)
        values = {
            name: _Code(e) if not e.constant else _as_field(cls, name, e.value)
            for name, e in given.items()
        }
        op = cls.model_construct(None, **values)  # fields as code: no validation, defaults filled
        shape = tuple(_Code(d) if d is not None else _UNKNOWN_DIM for d in inputs[0].shape)
        try:
            made = op.torch_call([shape])  # type: ignore[list-item]
        except (TypeError, AttributeError) as exc:
            raise Unsupported(f"the {cls.kind} constructor from expressions") from exc
        return _render(made)

    def _dynamic_op(
        self, kind: str, given: dict[str, Expr], inputs: list[Tensor], ctx: Ctx
    ) -> tuple[str, Any, bool]:
        """`op: $act`: a name chosen by a param, looked up in a dict of module constructors."""
        keys = set(given)
        candidates = sorted(
            name
            for name, cls in OPS.items()
            if cls.role in ("act", "regularize")
            and cls.has_module()
            and keys <= set(cls.model_fields)
            and all(not f.is_required() for n, f in cls.model_fields.items() if n not in keys)
            and cls.shape_rule.__func__ is Op.shape_rule.__func__  # type: ignore[attr-defined]
        )
        if not candidates:
            raise Unsupported(f"op {kind}")
        table = self._module_dict(tuple(candidates))
        choice = pyexpr.value(kind, ctx.env, self.needs)
        args = ", ".join(f"{k}={_literal(v)}" for k, v in given.items())
        result = Tensor("", inputs[0].shape, inputs[0].keeps, inputs[0].stride, False)
        return f"{table}[{choice.text}]({args})", lambda ref: result, False

    def _module_dict(self, kinds: tuple[str, ...]) -> str:
        if kinds in self.modules_by_role:
            return self.modules_by_role[kinds]
        acts = all(OPS[k].role == "act" for k in kinds)
        name = self.class_names.fresh("ACTIVATIONS" if acts else "MODULES")
        entries = []
        for kind in kinds:
            cls = OPS[kind]
            fields, shapes = cls.examples[0] if cls.examples else ({}, [(1, 1, 1)])
            func = cls.model_validate(fields).torch_call(shapes)
            if func is None:  # pragma: no cover - has_module() said it has one
                continue
            entries.append(f"    {kind!r}: {func.func},")
        self.needs.add("Callable")
        what = "activation" if acts else "module"
        self.module_dicts.append(
            f"# The {what}s a param may name, by their spec names.\n"
            f"{name}: dict[str, Callable[..., nn.Module]] = {{\n" + "\n".join(entries) + "\n}\n"
        )
        self.modules_by_role[kinds] = name
        return name

    def _block_call(
        self,
        entry: dict[str, Any],
        inputs: list[Tensor],
        ctx: Ctx,
        index: tuple[str, str] | None,
    ) -> tuple[str, Any, bool]:
        names = sorted(self._candidates(entry["block"], entry))
        if not names:
            raise Unsupported(f"block {entry['block']}")
        calls = [self._one_call(n, entry, inputs, ctx, index) for n in names]
        if len(calls) == 1:
            return calls[0]
        # a block chosen by a param: one class or another, each with its own arguments
        choice = pyexpr.value(entry["block"], ctx.env, self.needs)
        local = ctx.names.fresh("layer")
        ctx.init.line(f"{local}: {' | '.join(self.blocks[n].name for n in names)}")
        for n, (name, (text, _result, _ref)) in enumerate(zip(names, calls, strict=True)):
            ctx.init.line(f"{'if' if n == 0 else 'elif'} {choice.text} == {name!r}:")
            with ctx.init.indent():
                ctx.init.line(f"{local} = {text}")
        ctx.init.line("else:")
        with ctx.init.indent():
            ctx.init.line(f'raise ValueError(f"no block {{{choice.text}!r}}")')
        results = [r for _t, r, _n in calls]

        def result(ref: str) -> Tensor:
            outs = [r(ref) for r in results]
            channels = outs[-1].shape[0]
            for name, out in zip(names[:-1][::-1], outs[:-1][::-1], strict=True):
                if channels is None or out.shape[0] is None:
                    channels = None
                    break
                channels = sym.choose(
                    sym.code(f"{choice.text} == {name!r}"), out.shape[0], channels
                )
            if channels is None or len(channels.text) > 40:
                channels = sym.code(f"{ref}.out_channels")
            rank = len(inputs[0].shape)
            return Tensor("", (channels, *([None] * (rank - 1))), None, None)

        return local, result, False

    def _one_call(
        self,
        name: str,
        entry: dict[str, Any],
        inputs: list[Tensor],
        ctx: Ctx,
        index: tuple[str, str] | None,
    ) -> tuple[str, Any, bool]:
        cls = self.block(name)
        args = [t.shape[0].text if t.shape[0] is not None else "0" for t in inputs]
        if any(t.shape[0] is None for t in inputs):
            raise Unsupported(f"the input channels of a call of '{name}'")
        mapping: dict[str, Expr] = {"in_channels": inputs[0].shape[0]}  # type: ignore[dict-item]
        for n, t in zip(cls.inputs[1:], inputs[1:], strict=False):
            mapping[f"{n}_channels"] = t.shape[0]  # type: ignore[assignment]
        keywords = []
        for p in cls.params:
            if p.name in entry:
                val = self._argument(entry[p.name], p, ctx, index)
                keywords.append(f"{p.py}={val.text}")
                mapping[p.py] = val
            elif not p.required and not p.computed:
                mapping[p.py] = sym.const(p.default)
            elif p.computed:
                with contextlib.suppress(Unsupported):
                    mapping[p.py] = pyexpr.translate(
                        source_of(p.default) or "", _rename(mapping, cls, p), set()
                    )
        for g in cls.uses:
            value = ctx.env[g]
            keywords.append(f"{python_name(g)}={value.text}")
            mapping[python_name(g)] = value
        text = f"{cls.name}({', '.join([*args, *keywords])})"
        out = _substitute(cls.out, mapping)
        keeps = _substitute(cls.keeps, mapping)
        stride = _substitute(cls.stride, mapping)
        first = inputs[0]
        total_keeps = sym.all_of([first.keeps, keeps]) if first.keeps and keeps else None
        total_stride = sym.mul(first.stride, stride) if first.stride and stride else None
        spatial: tuple[Expr | None, ...] = (
            tuple(first.shape[1:])
            if total_keeps is not None and keeps is not None and keeps.constant and keeps.value
            else (None,) * (len(first.shape) - 1)
        )

        def result(ref: str) -> Tensor:
            channels = out if out is not None else sym.code(f"{ref}.out_channels")
            return Tensor("", (channels, *spatial), total_keeps, total_stride, cls.overwritable)

        return text, result, out is None

    # ---- blocks with a forward of their own --------------------------------------------------

    def _block_body(
        self, bdef: BlockDef, raw: Mapping[str, Any], sources: list[Tensor], ctx: Ctx
    ) -> Tensor:
        keys = list(raw)
        residual_first = "residual" in keys and keys.index("residual") < min(
            keys.index(k) for k in ("layers", "branches") if k in keys
        )
        body_init = Writer()
        saved_init, ctx.init = ctx.init, body_init
        names = {n: t for n, t in zip(bdef.inputs, sources, strict=True)}
        if bdef.layers is not None:
            out = self._graph(bdef.layers, sources[0], names, ctx)
        else:
            outs = []
            for branch, layers in (bdef.branches or {}).items():
                entry = (
                    _entry(layers)
                    if _is_entry(layers)
                    else {_SEQUENCE: layers}
                    if isinstance(layers, list)
                    else {"layers": layers}
                )
                outs.append(self._graph_entry(branch, entry, sources[0], names, ctx, sources[0]))
            merge = "concat" if bdef.merge == "concat" else "add"
            out = self._join(merge, outs, ctx, "out")
        ctx.init = saved_init
        if bdef.residual:
            spec = bdef.residual if isinstance(bdef.residual, ResidualSpec) else ResidualSpec()
            proj_init = Writer()
            ctx.init = proj_init
            out = self._residual(spec, sources[0], out, ctx)
            ctx.init = saved_init
            if residual_first:
                ctx.init.extend(proj_init)
                ctx.init.extend(body_init)
            else:
                ctx.init.extend(body_init)
                ctx.init.extend(proj_init)
        else:
            ctx.init.extend(body_init)
        if bdef.gate:
            out = self._join("mul", [sources[0], out], ctx, "out")
        if bdef.then is not None:
            then = (
                bdef.then
                if not isinstance(bdef.then, str) and not _is_entry(bdef.then)
                else {"then": bdef.then}
            )
            out = self._graph(then, out, names, ctx)
        if bdef.output is not None:
            if bdef.output not in names:
                raise Unsupported(f"output '{bdef.output}'")
            out = names[bdef.output]
        ctx.fwd.line(f"return {out.var}")
        return out

    def _graph(self, layers: Any, start: Tensor, names: dict[str, Tensor], ctx: Ctx) -> Tensor:
        """Named layers with their own attributes and forward lines (a DAG by `from:`)."""
        referenced = _referenced(layers)
        prev = start
        for key, entry in _pairs(layers):
            if key is None:
                raise Unsupported("a numbered layer in a block with a forward of its own")
            if "from" in entry:
                refs = entry["from"] if isinstance(entry["from"], list) else [entry["from"]]
                if any(r not in names for r in refs):
                    raise Unsupported(f"`from: {entry['from']}`")
                srcs = [names[r] for r in refs]
            else:
                srcs = [prev]
            var = ctx.fwd_names.fresh(key) if key in referenced else "out"
            prev = self._graph_entry(key, entry, srcs[0], names, ctx, srcs, var)
            names[key] = prev
        return prev

    def _graph_entry(
        self,
        key: str,
        entry: dict[str, Any],
        first: Tensor,
        names: dict[str, Tensor],
        ctx: Ctx,
        sources: Any,
        var: str = "",
    ) -> Tensor:
        srcs: list[Tensor] = sources if isinstance(sources, list) else [first]
        var = var or ctx.fwd_names.fresh(key)
        cond = self._condition(entry, ctx)
        if cond is not None and cond.constant and not cond.value:
            return srcs[0]
        op = entry.get("op")
        if isinstance(op, str) and not op.startswith("$") and not OPS[op].has_module():
            if cond is not None:
                raise Unsupported("a conditional join")
            return self._join(op, srcs, ctx, var, entry)
        attr = python_name(key)
        if attr != key:
            raise Unsupported(f"layer name '{key}'")
        init = ctx.init
        if cond is not None and not cond.constant:
            inner = Writer()
            ctx.init = inner
        if "repeat" in entry or "for" in entry or entry.get("spread"):
            ctx.init.line(f"self.{attr} = nn.Sequential()")
            result = self._chain_named(key, entry, srcs[0], ctx)
            text_ref = f"self.{attr}"
        else:
            text, made, _ref = self._module(entry, srcs, ctx, None, f"self.{attr}")
            if text != f"self.{attr}":
                ctx.init.line(f"self.{attr} = {text}")
            text_ref = f"self.{attr}"
            result = made(text_ref)
        args = ", ".join(t.var for t in srcs)
        if cond is not None and not cond.constant:
            ctx.init = init
            ctx.init.line(f"self.{attr}: nn.Module | None = None")
            ctx.init.line(f"if {cond.text}:")
            with ctx.init.indent():
                ctx.init.extend(inner)
            ctx.fwd.line(
                f"{var} = self.{attr}({args}) if self.{attr} is not None else {srcs[0].var}"
            )
            merged = self._merge_conditional(cond, srcs[0], result)
            return Tensor(var, merged.shape, merged.keeps, merged.stride, False)
        ctx.fwd.line(f"{var} = self.{attr}({args})")
        return Tensor(var, result.shape, result.keeps, result.stride, result.overwritable)

    def _chain_named(self, key: str, entry: dict[str, Any], start: Tensor, ctx: Ctx) -> Tensor:
        """A repeated entry under one name: an nn.Sequential of its copies."""
        container = f"self.{key}"
        loop = self._loop(entry, ctx)
        current = self._materialize(start, ctx)
        if loop is None:  # spread without a loop
            return self._spread(entry, container, current, ctx, None)
        return self._loop_body(loop, entry, container, current, ctx)

    def _join(
        self,
        kind: str,
        inputs: list[Tensor],
        ctx: Ctx,
        var: str,
        entry: dict[str, Any] | None = None,
    ) -> Tensor:
        cls = OPS[kind]
        given = {
            k: pyexpr.value(v, ctx.env, self.needs)
            for k, v in (entry or {}).items()
            if k not in ENTRY_KEYS
        }
        if any(not e.constant for e in given.values()):
            raise Unsupported(f"a {kind} with fields from expressions")
        op = cls.model_validate({k: e.value for k, e in given.items()})
        shape = cls.shape_rule(Fields(cls, given), [t.shape for t in inputs])
        if shape is None:
            raise Unsupported(f"the shape after a {kind}")
        ctx.fwd.line(f"{var} = {op.torch_forward('', [t.var for t in inputs])}")
        first = inputs[0]
        return Tensor(var, shape, first.keeps, first.stride, cls.output_overwritable)

    def _residual(self, spec: ResidualSpec, shortcut: Tensor, out: Tensor, ctx: Ctx) -> Tensor:
        when = spec.when
        cond = (
            sym.const(True)
            if when is True
            else (
                pyexpr.value(when, ctx.env, self.needs)
                if isinstance(when, str)
                else sym.const(bool(when))
            )
        )
        if cond.constant and not cond.value:
            return out
        add_var = out.var
        if spec.projection is not None:
            if shortcut.keeps is None or out.shape[0] is None:
                raise Unsupported("a projection whose need is not known from the ops")
            name = python_name(spec.projection)
            need = sym.any_of(
                [
                    sym.not_(out.keeps or sym.const(False)),
                    sym.ne(shortcut.shape[0] or sym.code("0"), out.shape[0]),
                ]
            )
            stride = one_stride(out.stride) if out.stride is not None else None
            if stride is None and not (need.constant and not need.value):
                raise Unsupported("a projection after a layer without a stride")
            source = shortcut.shape[0].text if shortcut.shape[0] else "0"
            conv = f"nn.Conv2d({source}, {out.shape[0].text}, kernel_size=1"
            if stride is not None and not (stride.constant and stride.value == 1):
                conv += f", stride={_literal(stride)}"
            conv += ", bias=False)"
            parts = [conv] + ([f"nn.BatchNorm2d({out.shape[0].text})"] if spec.norm else [])
            module = f"nn.Sequential({', '.join(parts)})"
            identity = ctx.fwd_names.fresh("identity")
            if need.constant and need.value:
                ctx.init.line(f"self.{name} = {module}")
                ctx.fwd.line(f"{identity} = self.{name}({shortcut.var})")
            elif need.constant:
                identity = shortcut.var
            else:
                ctx.init.line(f"self.{name}: nn.Sequential | None = None")
                ctx.init.line(f"if {need.text}:")
                with ctx.init.indent():
                    ctx.init.line(f"self.{name} = {module}")
                ctx.fwd.line(f"{identity} = {shortcut.var}")
                ctx.fwd.line(f"if self.{name} is not None:")
                with ctx.fwd.indent():
                    ctx.fwd.line(f"{identity} = self.{name}({shortcut.var})")
            short = identity
        else:
            short = shortcut.var
        result_var = "out"
        if cond.constant:
            if out.overwritable and out.var not in (shortcut.var,):
                ctx.fwd.line(f"{add_var} += {short}")
                result_var = add_var
            else:
                ctx.fwd.line(f"{result_var} = {add_var} + {short}")
        else:
            flag = "use_residual"
            ctx.init.line(f"self.{flag} = {cond.text}")
            if out.overwritable:
                ctx.fwd.line(f"if self.{flag}:")
                with ctx.fwd.indent():
                    ctx.fwd.line(f"{add_var} += {short}")
                result_var = add_var
            else:
                ctx.fwd.line(f"{result_var} = {add_var} + {short} if self.{flag} else {add_var}")
        return Tensor(result_var, out.shape, out.keeps, out.stride, True)

    # ---- conditions and channel bookkeeping -------------------------------------------------

    def _condition(self, entry: dict[str, Any], ctx: Ctx) -> Expr | None:
        if "if" not in entry:
            return None
        return pyexpr.value(entry["if"], ctx.env, self.needs)

    def _materialize(self, current: Tensor, ctx: Ctx) -> Tensor:
        """The channel count in a variable, so that a loop or a conditional may update it."""
        channels = current.shape[0]
        if (
            channels is not None
            and channels.text.startswith("channels")
            and _is_name(channels.text)
        ):
            return current
        name = ctx.names.fresh("channels")
        ctx.init.line(f"{name} = {channels.text if channels is not None else 0}")
        spatial = tuple(current.shape[1:])
        return Tensor(
            current.var,
            (sym.code(name), *spatial),
            current.keeps,
            current.stride,
            current.overwritable,
        )

    def _assign_channels(self, before: Tensor, after: Tensor, ctx: Ctx) -> None:
        old, new = before.shape[0], after.shape[0] if after.shape else None
        if new is None or old is None:
            raise Unsupported("channels through a loop or a condition")
        if new.text != old.text:
            ctx.init.line(f"{old.text} = {new.text}")

    def _after_loop(self, before: Tensor, after: Tensor) -> Tensor:
        spatial = tuple(
            a if a is not None and b is not None and a.text == b.text else None
            for a, b in zip(before.shape[1:], after.shape[1:], strict=False)
        )
        if len(after.shape) != len(before.shape):
            raise Unsupported("a loop that changes the rank")
        keeps = (
            after.keeps
            if after.keeps is not None and after.keeps.constant and after.keeps.value
            else None
        )
        stride = before.stride if keeps is not None else None
        return Tensor(after.var, (before.shape[0], *spatial), keeps, stride, after.overwritable)

    def _merge_conditional(self, cond: Expr, before: Tensor, after: Tensor) -> Tensor:
        if len(before.shape) != len(after.shape):
            raise Unsupported("a conditional layer that changes the rank")
        shape = tuple(
            sym.choose(cond, a, b) if a is not None and b is not None else None
            for a, b in zip(after.shape, before.shape, strict=True)
        )
        keeps = sym.any_of([sym.not_(cond), after.keeps]) if after.keeps is not None else None
        keeps = (
            sym.all_of([before.keeps, keeps])
            if before.keeps is not None and keeps is not None
            else None
        )
        if (
            before.keeps is not None
            and after.keeps is not None
            and before.keeps.text == after.keeps.text
        ):
            keeps = before.keeps
        stride = (
            sym.choose(cond, after.stride, before.stride)
            if after.stride is not None and before.stride is not None
            else None
        )
        return Tensor(after.var, shape, keeps, stride, False)

    # ---- the model class -----------------------------------------------------------------------

    def _root(self) -> str:
        ctx = Ctx({}, Names(), Writer())
        ctx.fwd_names = Names(["x"])
        keywords = []
        for p in self.model_params:
            ctx.names.taken.add(p.py)
        keywords = self._param_signature(
            self.model_params, {k: [v] for k, v in self.graph.params.items()}, ctx
        )
        shape = tuple(pyexpr.value(d, ctx.env, self.needs) for d in self.spec.input)
        if any(not d.constant for d in shape):
            ctx.init.line(f"input_shape = ({', '.join(d.text for d in shape)},)")
            shape = tuple(sym.code(f"input_shape[{i}]") for i in range(len(shape)))
        ctx.env["in_channels"] = shape[0]
        start = Tensor("x", shape, sym.const(True), sym.const(1))
        names: dict[str, Tensor] = {"input": start}
        referenced = _referenced(self.spec.layers) | set(self._output_refs().values())
        prev = start
        outputs: dict[str, str] = {}
        optional: set[str] = set()
        for key, entry in _pairs(self.spec.layers):
            if key is None:
                raise Unsupported("a numbered top-level layer")
            if "from" in entry:
                refs = entry["from"] if isinstance(entry["from"], list) else [entry["from"]]
                if any(r not in names for r in refs):
                    raise Unsupported(f"`from: {entry['from']}`")
                srcs = [names[r] for r in refs]
            else:
                srcs = [prev]
            var = ctx.fwd_names.fresh(key) if key in referenced else "x"
            cond = self._condition(entry, ctx)
            result = self._graph_entry(key, entry, srcs[0], names, ctx, srcs, var)
            if cond is not None and not cond.constant:
                optional.add(key)
                if "from" not in entry:
                    raise Unsupported("a switchable top-level layer on the main path")
            names[key] = result
            if cond is None or not cond.constant or cond.value:
                prev = result if "from" not in entry or not _is_side(entry) else prev
                if cond is None or cond.constant:
                    prev = result
        returns = "torch.Tensor"
        declared = self.spec.outputs
        if declared is None:
            ctx.fwd.line(f"return {prev.var}")
        else:
            items = self._output_refs()
            for label, ref in items.items():
                if ref not in names:
                    raise Unsupported(f"output '{ref}'")
                outputs[label] = names[ref].var
            if len(items) == 1:
                ctx.fwd.line(f"return {next(iter(outputs.values()))}")
            else:
                returns = self._outputs_type(items, optional, outputs, ctx)
        methods = self._reset_weights(ctx)
        shape_text = list(self.graph.input_shape)
        figures = f"input {shape_text}, {self.model.params:,} parameters at the defaults"
        doc = f'"""`{sanitize(self.spec.name)}`: {figures}."""'
        return self._class_text(
            camel(self.spec.name), "nn.Module", doc, [], keywords, ctx, None, returns, methods
        )

    def _output_refs(self) -> dict[str, str]:
        declared = self.spec.outputs
        if declared is None:
            return {}
        if isinstance(declared, str):
            return {declared: declared}
        if isinstance(declared, list):
            return {ref: ref for ref in declared}
        return dict(declared)

    def _outputs_type(
        self, items: Mapping[str, str], optional: set[str], outputs: Mapping[str, str], ctx: Ctx
    ) -> str:
        for label in items:
            if not label.isidentifier() or python_name(label) != label:
                raise Unsupported(f"output label '{label}'")
        self.needs.add("NamedTuple")
        name = camel(self.spec.name) + "Outputs"
        fields = "\n".join(
            f"    {label}: torch.Tensor{' | None' if items[label] in optional else ''}"
            for label in items
        )
        self.output_types.append(
            f"class {name}(NamedTuple):\n"
            f'    """The outputs of {camel(self.spec.name)}, in spec order."""\n\n{fields}\n'
        )
        joined = ", ".join(f"{label}={outputs[label]}" for label in items)
        eval_output = self.spec.eval_output
        if eval_output is not None:
            ctx.fwd.line("if not self.training:")
            with ctx.fwd.indent():
                ctx.fwd.line(f"return {outputs[eval_output]}")
        ctx.fwd.line(f"return {name}({joined})")
        return f"torch.Tensor | {name}"

    def _reset_weights(self, ctx: Ctx) -> list[str]:
        """The spec's initial weights: a rule per op kind, applied after construction."""
        by_rule: dict[tuple[str, str], list[str]] = {}
        for kind, written in self.spec.init.items():
            init = init_rule(written)
            if init == ("default", "default") or not init_lines(init):
                continue
            cls = OPS[kind]
            fields, shapes = cls.examples[0]
            made = cls.model_validate(fields).torch_call(shapes)
            if made is not None:
                by_rule.setdefault(init, []).append(made.func)
        if not by_rule:
            return []
        if any("math." in line for rule in by_rule for line in init_lines(rule)):
            self.needs.add("math")
        w = Writer()
        w.line("def reset_weights(self) -> None:")
        with w.indent():
            w.line('"""Initial weights as the spec asks; torch\'s defaults elsewhere."""')
            w.line("for m in self.modules():")
            with w.indent():
                for index, (rule, classes) in enumerate(by_rule.items()):
                    keyword = "if" if index == 0 else "elif"
                    kinds = classes[0] if len(classes) == 1 else f"({', '.join(classes)})"
                    w.line(f"{keyword} isinstance(m, {kinds}):")
                    with w.indent():
                        for line in init_lines(rule):
                            w.line(line)
        ctx.init.line("self.reset_weights()")
        return ["\n".join(w.lines)]


def _as_field(cls: type[Op], name: str, value: Any) -> Any:
    """A literal as the op's field holds it: `3` for a pair field is (3, 3), lists tuples."""
    if isinstance(value, list):
        value = tuple(value)
    info = cls.model_fields.get(name)
    pair = info is not None and "tuple" in str(info.annotation)
    if pair and isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    return value


class _Code:
    """A field value inside a symbolic op instance: prints as its source text."""

    def __init__(self, expr: Expr) -> None:
        self.expr = expr

    def __repr__(self) -> str:
        return self.expr.text

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return hash(self.expr.text)


_UNKNOWN_DIM = _Code(sym.code("0"))


def _render(made: Any) -> str:
    parts = []
    for arg in made.args:
        if arg.value is _UNKNOWN_DIM:
            raise Unsupported("a size that depends on the input's height and width in a block")
        if isinstance(arg.value, _Code):
            text = arg.value.expr.text
        elif hasattr(arg.value, "func"):
            text = _render(arg.value)
        else:
            if arg.omissible(arg.value):
                continue
            text = _literal(sym.const(arg.value))
        parts.append(f"{arg.keyword}={text}" if arg.keyword else text)
    return f"{made.func}({', '.join(parts)})"


def _literal(value: Expr) -> str:
    if value.constant:
        return literal(value.value) if isinstance(value.value, tuple) else repr(value.value)
    return value.text


def _free(expr: Expr) -> set[str]:
    tree = ast.parse(expr.text, mode="eval")
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - {
        "math",
        "make_divisible",
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


def _substitute(expr: Expr | None, mapping: Mapping[str, Expr]) -> Expr | None:
    if expr is None:
        return None
    try:
        return pyexpr.translate(expr.text, {**mapping, **_helpers()}, set())
    except Unsupported:
        return None


def _helpers() -> dict[str, Expr]:
    return {n: sym.code(n) for n in ("math", "make_divisible")}


def _rename(mapping: Mapping[str, Expr], cls: BlockClass, p: Param) -> dict[str, Expr]:
    """The callee's names (spec names) mapped to the caller's values, for a computed default."""
    out = {**_helpers()}
    for q in cls.params:
        if q.py in mapping:
            out[q.name] = mapping[q.py]
    for g in cls.uses:
        if python_name(g) in mapping:
            out[g] = mapping[python_name(g)]
    out["in_channels"] = mapping["in_channels"]
    return out


def _defined_in(expr: Expr, block: Writer) -> bool:
    """Whether an expression reads a variable that `block` assigns."""
    assigned = {line.strip().split(" = ")[0] for line in block.lines if " = " in line}
    return bool(_free(expr) & assigned) or "out_channels" in expr.text


def _default_text(head: str, default: Expr) -> str:
    """`name: hint = default`; a long table gets a row per line."""
    text = f"{head} = {default.text}"
    value = default.value
    if len(text) <= 80 or not isinstance(value, tuple):
        return text
    rows = "\n".join(f"    {literal(v) if not isinstance(v, tuple) else repr(v)}," for v in value)
    return f"{head} = (\n{rows}\n)"


def _is_name(text: str) -> bool:
    return text.isidentifier()


def _is_entry(layers: Any) -> bool:
    return isinstance(layers, dict) and ("op" in layers or "block" in layers)


def _is_side(entry: dict[str, Any]) -> bool:
    return "from" in entry


def _referenced(layers: Any) -> set[str]:
    out: set[str] = set()
    for _key, entry in _pairs(layers):
        refs = entry.get("from")
        if isinstance(refs, str):
            out.add(refs)
        elif isinstance(refs, list):
            out |= {r for r in refs if isinstance(r, str)}
    return out


def _template_parts(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    import string

    return list(string.Formatter().parse(template))


def _template_fields(template: str) -> list[str]:
    try:
        return [name for _l, name, _s, _c in _template_parts(template) if name]
    except ValueError:
        return []


def _wrap_long(line: str) -> str:
    """Lines past 99 columns: a call's arguments one per line (ruff's style, roughly)."""
    if len(line) <= 99:
        return line
    indent = line[: len(line) - len(line.lstrip())]
    body = line.strip()
    comma = body.endswith(",")
    body = body.rstrip(",")
    start = body.find("(")
    if (
        start < 0
        or not body.endswith(")")
        or not (body[start - 1 : start].isalnum() or body[start - 1 : start] in "_]")
    ):
        return line
    depth, current, args = 0, "", []
    inner = body[start + 1 : -1]
    quote: str | None = None
    for ch in inner:
        if quote:
            current += ch
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        if ch == "," and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        depth += ch in "([{"
        depth -= ch in ")]}"
        current += ch
    if current.strip():
        args.append(current.strip())
    lines = [f"{indent}{body[: start + 1]}"]
    lines += [_wrap_long(f"{indent}    {arg},") for arg in args]
    lines.append(f"{indent}){',' if comma else ''}")
    return "\n".join(lines)
