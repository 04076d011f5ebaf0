"""Torch source from the spec's definitions, as a compiler translates functions.

A block definition becomes one class whose keyword arguments are the block's params (with the
spec's defaults) and the model params it reads; its input channel count comes first, as
torchvision passes `inplanes`. `repeat:` and `for:` become loops, `if:` conditionals, `names:`
f-strings, per-repeat values `(2, 1)[min(i, 1)]`, and the channel count is carried through
`__init__` by the ops' own rules (`Op.shape_rule`). The model class takes every model param, so
the file built at the defaults builds any member of a family.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ... import symbolic as sym
from ...ir import Scope
from ...ops import OPS
from ...ops.base import ShapeCode
from ...spec import BlockDef, Init, ResidualSpec, init_rule
from . import pyexpr
from .forwards import ForwardWriter
from .pyexpr import Unsupported
from .runtime import (
    STOCHASTIC_DEPTH,
    camel,
    class_argument,
    example_call,
    header,
    helper_sources,
    init_lines,
    rule_set_names,
    sanitize,
)
from .spec_layers import (
    Param,
    is_side,
    pairs,
    param_hint,
    parse_params,
    referenced_names,
)
from .values import (
    BlockClass,
    Ctx,
    Tensor,
    free_names,
)
from .writer import (
    Names,
    Writer,
    default_text,
    double_quoted,
    literal_text,
    python_name,
    wrap_long,
)


class DefinitionGenerator(ForwardWriter):
    """Writes the generated file for one spec (see the module docstring)."""

    # ---- the file ---------------------------------------------------------------------------

    def source(self, spec_file: str) -> str:
        root = self._root()
        parts = helper_sources(self.needs)
        if "StochasticDepth" in self.needs:
            parts.append(STOCHASTIC_DEPTH)
        parts += self.output_types
        parts += [b.source for b in self.order]
        parts.append(root)
        text = header(self.spec.name, spec_file, self.needs, self._settings()).rstrip("\n") + "\n"
        for table in self.module_dicts:  # statements follow the imports after one blank line
            text += "\n" + table.rstrip("\n") + "\n"
        return double_quoted("\n\n".join([text, *(p.rstrip("\n") + "\n" for p in parts)]))

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
        params = parse_params(bdef.params)
        uses = [p.name for p in self.model_params if p.name in self._uses_of(name)]
        inputs = ["x" if n == "input" else python_name(n) for n in bdef.inputs]
        wanted = camel(name)
        if wanted in self.class_names.taken:  # a block named as the model: `NinBlock`
            wanted += "Block"
        made = BlockClass(self.class_names.fresh(wanted), params, uses, inputs)
        ctx = Ctx({}, Names(["in_channels", *inputs]), Writer(), class_name=made.name)
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
        # a numbered chain with a residual add or a gate: an nn.Sequential whose forward adds
        # the edge after its own (torchvision's keys `0.weight`, no per-call lookups)
        edged = (
            not sequential
            and isinstance(bdef.layers, list)
            and len(bdef.inputs) == 1
            and bdef.then is None
            and bdef.output is None
            and (not isinstance(bdef.residual, ResidualSpec) or bdef.residual.projection is None)
            and self._is_chain(bdef.layers)
        )
        if sequential:
            out = self._chain(bdef.layers, "self", first, ctx)
        elif edged:
            out = self._edged_chain(bdef, first, ctx)
        else:
            out = self._block_body(bdef, sources, ctx)
        channels = out.shape[0] if out.shape else None
        if channels is None:
            raise Unsupported(f"the output channels of block '{name}'")
        ctx.init.line(f"self.out_channels = {channels.text}")
        allowed = {"in_channels", *(f"{n}_channels" for n in inputs[1:])}
        allowed |= {p.py for p in params} | {python_name(g) for g in uses}
        made.out = channels if free_names(channels) <= allowed else None
        made.keeps = out.keeps if out.keeps and free_names(out.keeps) <= allowed else None
        made.stride = out.stride if out.stride and free_names(out.stride) <= allowed else None
        made.overwritable = out.overwritable
        sized = allowed | {"in_height", "in_width"}
        made.spatial = tuple(
            d if d is not None and free_names(d) <= sized else None for d in out.shape[1:]
        )
        if any(re.search(r"\bin_(height|width)\b", line) for line in ctx.init.lines):
            made.sized = True
            keywords.append("in_size: tuple[int, int]")
            ctx.init.lines.insert(0, "in_height, in_width = in_size")
        base = "nn.Sequential" if sequential or edged else "nn.Module"
        doc = f'"""Block `{sanitize(name)}` of the spec."""'
        made.source = self._class_text(made.name, base, doc, signature, keywords, ctx, made)
        return made

    def _edged_chain(self, bdef: BlockDef, first: Tensor, ctx: Ctx) -> Tensor:
        body = self._chain(bdef.layers, "self", first, ctx)
        ctx.fwd.line(f"out = super().forward({first.var})")
        out = Tensor("out", body.shape, body.keeps, body.stride, body.overwritable)
        if bdef.residual:
            spec = bdef.residual if isinstance(bdef.residual, ResidualSpec) else ResidualSpec()
            out = self._residual(spec, first, out, ctx)
        if bdef.gate:
            out = self._join("mul", [first, out], ctx, "out")
        ctx.fwd.line(f"return {out.var}")
        return out

    @functools.cached_property
    def _instances(self) -> dict[str, list[Scope]]:
        """The compiled instances of each block, by the block's name (looked up per block:
        scanning every scope for each of thousands of blocks would be quadratic)."""
        out: dict[str, list[Scope]] = {}
        for scope in self.graph.scopes.values():
            if scope.kind == "block":
                out.setdefault(str(scope.label), []).append(scope)
        return out

    @functools.cached_property
    def _ranks(self) -> dict[str, int]:
        return {layer.name: len(layer.shape) for layer in self.model.layers}

    def _instance_values(self, block: str) -> dict[str, list[Any]]:
        """Each param's values in the compiled instances (for type hints)."""
        out: dict[str, list[Any]] = {}
        for scope in self._instances.get(block, []):
            for key, value in scope.params.items():
                out.setdefault(key, []).append(value)
        return out

    def _input_shape(self, block: str) -> ShapeCode:
        """The rank of the block's input, from an instance (3 where none is compiled)."""
        for scope in self._instances.get(block, []):
            if scope.inputs and self._ranks.get(scope.inputs[0]) == 1:
                return (sym.code("in_channels"),)
        if self.track_size:
            return (sym.code("in_channels"), sym.code("in_height"), sym.code("in_width"))
        return (sym.code("in_channels"), None, None)

    def _global_hint(self, name: str) -> str:
        p = next(p for p in self.model_params if p.name == name)
        return param_hint(p.type, [self.graph.params.get(name)])

    def _param_signature(
        self, params: list[Param], values: Mapping[str, list[Any]], ctx: Ctx
    ) -> list[str]:
        """Keyword arguments, and the __init__ lines computing defaults written as expressions."""
        out = []
        for p in params:
            hint = param_hint(p.type, values.get(p.name, []))
            if p.required:
                out.append(f"{p.py}: {hint}")
            elif p.computed:
                out.append(f"{p.py}: {hint} | None = None")
                default = pyexpr.value(p.default, ctx.env, self.needs)
                ctx.init.line(f"if {p.py} is None:")
                with ctx.init.indent():
                    ctx.init.line(f"{p.py} = {default.text}")
            else:
                out.append(default_text(f"{p.py}: {hint}", sym.const(p.default)))
            if p.choices is not None:
                listed = literal_text(sym.const(p.choices))
                ctx.init.line(f"if {p.py} not in {listed}:")
                with ctx.init.indent():
                    ctx.init.line(
                        f'raise ValueError(f"{p.py} must be one of {listed}, not {{{p.py}!r}}")'
                    )
            if p.type == "pair":  # as the compiler holds it: [height, width]
                pair = f"({p.py}, {p.py}) if isinstance({p.py}, int) else ({p.py}[0], {p.py}[1])"
                ctx.init.line(f"{p.py} = {pair}")
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
            if base != "nn.Sequential" or ctx.fwd.lines:
                inputs = block.inputs if block else ["x"]
                w.line("")
                signature = ", ".join(f"{n}: torch.Tensor" for n in inputs)
                w.line(f"def forward(self, {signature}) -> {returns}:")
                with w.indent():
                    for line in _typed_locals(ctx.fwd.lines, inputs):
                        w.line(line)
        return "\n".join(wrap_long(line) for line in w.lines) + "\n"

    # ---- the model class -----------------------------------------------------------------------

    def _settings(self) -> str:
        """`num_classes=7, input [1, 32, 32]`: what the caller set over the spec."""
        parts = [f"{k}={v!r}" for k, v in self.graph.overrides.items()]
        if self.graph.input_given:
            parts.append(f"input {list(self.graph.input_shape)}")
        return ", ".join(parts)

    def _root(self) -> str:
        ctx = Ctx({}, Names(), Writer(), class_name=camel(self.spec.name))
        ctx.fwd_names = Names(["x"])
        keywords = []
        for p in self.model_params:
            ctx.names.taken.add(p.py)
        keywords = self._param_signature(
            self.model_params, {k: [v] for k, v in self.graph.params.items()}, ctx
        )
        given = self.graph.input_shape if self.graph.input_given else None  # from `--input`
        shape = tuple(pyexpr.value(d, ctx.env, self.needs) for d in given or self.spec.input)
        layer_names = {key for key, _ in pairs(self.spec.layers) if key is not None}
        dims = f"({', '.join(d.text for d in shape)}{',' if len(shape) == 1 else ''})"
        if any(not d.constant for d in shape) and "input_shape" not in layer_names:
            # the input size a param sets (EfficientNet's `resolution`), kept for the caller:
            # the layers take any size, so nothing else reads it
            ctx.init.line(f"self.input_shape = {dims}")
        if any(not d.constant and not d.text.isidentifier() for d in shape):
            ctx.init.line(f"input_shape = {dims}")
            shape = tuple(sym.code(f"input_shape[{i}]") for i in range(len(shape)))
        ctx.env["in_channels"] = shape[0]
        start = Tensor("x", shape, sym.const(True), sym.const(1))
        names: dict[str, Tensor] = {"input": start}
        referenced = referenced_names(self.spec.layers) | set(self._output_refs().values())
        prev = start
        outputs: dict[str, str] = {}
        optional: set[str] = set()
        training_only = self._training_only()
        deferred: list[str] = []  # forward lines for training alone, after the eval return
        for key, entry in pairs(self.spec.layers):
            if key is None:
                raise Unsupported("a numbered top-level layer")
            srcs = self._sources(entry, names, prev)
            var = ctx.fwd_names.fresh(key) if key in referenced else "x"
            cond = self._condition(entry, ctx)
            mark = len(ctx.fwd.lines)
            result = self._graph_entry(key, entry, srcs[0], names, ctx, srcs, var)
            if key in training_only and "x" not in {var, *(s.var for s in srcs)}:
                deferred += ctx.fwd.lines[mark:]  # reads named values only: safe to move
                del ctx.fwd.lines[mark:]
            if cond is not None and not cond.constant:
                optional.add(key)
                if "from" not in entry:
                    raise Unsupported("a switchable top-level layer on the main path")
            names[key] = result
            if cond is None or not cond.constant or cond.value:
                prev = result if "from" not in entry or not is_side(entry) else prev
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
                returns = self._outputs_type(items, optional, outputs, ctx, deferred)
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

    def _training_only(self) -> set[str]:
        """Top-level layers the eval-mode output does not need (auxiliary heads)."""
        label = self.graph.eval_output
        if label is None:
            return set()
        needed = {name.split(".", 1)[0] for name in self.model.upstream(self.graph.outputs[label])}
        return {key for key, _ in pairs(self.spec.layers) if key is not None} - needed

    def _outputs_type(
        self,
        items: Mapping[str, str],
        optional: set[str],
        outputs: Mapping[str, str],
        ctx: Ctx,
        deferred: list[str],
    ) -> str:
        for label in items:
            # a field name: any identifier the validator allows, but the annotation's module
            if not label.isidentifier() or label.startswith("_") or label == "torch":
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
        ctx.fwd.lines += deferred  # what only training computes
        ctx.fwd.line(f"return {name}({joined})")
        return f"torch.Tensor | {name}"

    def _reset_weights(self, ctx: Ctx) -> list[str]:
        """The spec's initial weights, applied after construction in module order: each layer's
        own rule, else its kind's."""
        by_rule: dict[Init, list[str]] = {}
        for kind, written in self.spec.init.items():
            init = init_rule(written)
            made = example_call(OPS[kind])
            if not init.is_default and init_lines(init) and made is not None:
                by_rule.setdefault(init, []).append(made.func)
        if not by_rule and not self.own_inits:
            return []
        rules = [*by_rule, *self.own_inits]
        if any("math." in line for rule in rules for line in init_lines(rule)):
            self.needs.add("math")
        w = Writer()
        w.line("def reset_weights(self) -> None:")
        with w.indent():
            w.line('"""Initial weights as the spec asks; torch\'s defaults elsewhere."""')
            own = self._own_init_sets(w)
            w.line("for m in self.modules():")
            with w.indent():
                branches = [
                    (f"id(m) in {name} and isinstance(m, {class_argument(places)})", rule)
                    for name, (rule, places) in own
                ]
                branches += [(f"isinstance(m, {class_argument(c)})", r) for r, c in by_rule.items()]
                for index, (condition, rule) in enumerate(branches):
                    w.line(f"{'if' if index == 0 else 'elif'} {condition}:")
                    with w.indent():
                        for line in init_lines(rule):
                            w.line(line)
        ctx.init.line("self.reset_weights()")
        return ["\n".join(wrap_long(line) for line in w.lines)]

    def _own_init_sets(self, w: Writer) -> list[tuple[str, tuple[Init, list[str]]]]:
        """Statements collecting the layers that have their own rule (the model's own layers by
        attribute, the layers of blocks through each instance of the block's class), one set
        of identities per rule; the sets' names with their rules and torch classes."""
        root = camel(self.spec.name)
        sets = []
        names = rule_set_names(list(self.own_inits))
        for name, (rule, places) in zip(names, self.own_inits.items(), strict=True):
            mine = [f"id(self.{a})" for cls, a, _ in places if cls == root]
            theirs: dict[str, list[str]] = {}
            for cls, attribute, _ in places:
                if cls != root:
                    theirs.setdefault(cls, []).append(attribute)
            parts = [f"{{{', '.join(mine)}}}"] if mine else []
            parts += [
                f"{{id(m.{a}) for m in self.modules() if isinstance(m, {cls})}}"
                for cls, attributes in theirs.items()
                for a in attributes
            ]
            w.line(f"{name}: set[int] = {' | '.join(parts)}")
            sets.append((name, (rule, sorted({torch for _, _, torch in places}))))
        return sets


def _typed_locals(lines: list[str], inputs: list[str]) -> list[str]:
    """Forward lines with each new local declared a tensor where it is first assigned: a
    submodule's call returns Any in torch's stubs, and `mypy --strict` would not let forward
    return it as a tensor."""
    seen = set(inputs)
    out = []
    for line in lines:
        match = re.match(r"(\s*)([A-Za-z_]\w*) = (.*)", line)
        if match and match[2] not in seen:
            seen.add(match[2])
            line = f"{match[1]}{match[2]}: torch.Tensor = {match[3]}"
        out.append(line)
    return out
