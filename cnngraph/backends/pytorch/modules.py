"""One module at a time: op and block calls, dynamic ops, conditions and the channel count
carried through `__init__`."""

from __future__ import annotations

import contextlib
from typing import Any

from ... import symbolic as sym
from ...expr import list_items, source_of
from ...ops import OPS, Op
from ...ops.base import Fields
from ...params import WHOLE_VALUES
from ...spec import ENTRY_KEYS, InitRule, init_rule
from ...symbolic import Expr
from . import pyexpr
from .pyexpr import Unsupported
from .runtime import example_call, init_lines
from .spec_layers import (
    SEQUENCE,
    Param,
)
from .values import (
    UNKNOWN_DIM,
    Code,
    Ctx,
    GeneratorState,
    Tensor,
    as_field,
    callee_names,
    render,
    substitute,
)
from .writer import literal_text, python_name


class ModuleWriter(GeneratorState):
    """Writes one layer's module (an op or a block call) into the class being written."""

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
            entry = self._own_init(entry, attribute, ctx)
        if SEQUENCE in entry or ("layers" in entry and "op" not in entry and "block" not in entry):
            body = entry.get(SEQUENCE, entry.get("layers"))
            if not self._is_chain(body):
                raise Unsupported("an inline sequence that is not a chain")
            local = attribute or ctx.names.fresh("layers")
            ctx.init.line(f"{local} = nn.Sequential()")
            result = self._chain(body, local, inputs[0], ctx)
            return local, lambda ref: result, False
        if "block" in entry:
            return self._block_call(entry, inputs, ctx, index)
        return self._op(entry, inputs, ctx)

    def _own_init(self, entry: dict[str, Any], attribute: str | None, ctx: Ctx) -> dict[str, Any]:
        """The entry without its `init:`, which `reset_weights()` applies to the attribute in
        place of its kind's rule (as the compiled model does)."""
        raw = entry["init"]
        if attribute is None or not attribute.startswith("self.") or "if" in entry:
            raise Unsupported("a layer's own `init:` on a conditional layer or at a varying place")
        if not isinstance(raw, (str, dict)) or pyexpr.names_in(raw) or "op" not in entry:
            raise Unsupported("a layer's own `init:` from an expression")
        if not isinstance(entry["op"], str) or entry["op"] not in OPS:
            raise Unsupported("a layer's own `init:` on an op chosen by an expression")
        rule = init_rule(InitRule.model_validate(raw) if isinstance(raw, dict) else raw)
        made = example_call(OPS[entry["op"]])
        if init_lines(rule) and made is not None:
            place = (ctx.class_name, attribute.removeprefix("self."), made.func)
            self.own_inits.setdefault(rule, []).append(place)
        return {k: v for k, v in entry.items() if k != "init"}

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
            name: Code(e) if not e.constant else as_field(cls, name, e.value)
            for name, e in given.items()
        }
        op = cls.model_construct(None, **values)  # fields as code: no validation, defaults filled
        shapes = [tuple(Code(d) if d is not None else UNKNOWN_DIM for d in t.shape) for t in inputs]
        try:
            made = op.torch_call(shapes)  # type: ignore[arg-type]
        except (TypeError, AttributeError, ValueError) as exc:
            raise Unsupported(f"the {cls.kind} constructor from expressions") from exc
        return render(made)

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
        args = ", ".join(f"{k}={literal_text(v)}" for k, v in given.items())
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
        local = ctx.declare("layer", " | ".join(self.blocks[n].name for n in names))
        for n, (name, (text, _result, _ref)) in enumerate(zip(names, calls, strict=True)):
            ctx.init.line(f"{'if' if n == 0 else 'elif'} {choice.text} == {name!r}:")
            with ctx.init.indent():
                ctx.init.line(f"{local} = {text}")
        self._no_such_choice(choice, names, ctx)
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

    @staticmethod
    def _no_such_choice(choice: Expr, names: list[str], ctx: Ctx) -> None:
        """The `else:` of an if/elif over the blocks a param may name: a clear error."""
        ctx.init.line("else:")
        with ctx.init.indent():
            expected = ", ".join(repr(n) for n in names)
            what = f"{choice.text}: " if choice.text.isidentifier() else ""
            ctx.init.line(
                f'raise ValueError(f"{what}expected one of {expected}, got {{{choice.text}!r}}")'
            )

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
                        source_of(p.default) or "", callee_names(mapping, cls, p), set()
                    )
        for g in cls.uses:
            value = ctx.env[g]
            keywords.append(f"{python_name(g)}={value.text}")
            mapping[python_name(g)] = value
        first = inputs[0]
        sizes = list(first.shape[1:])
        if len(sizes) == 2 and all(d is not None for d in sizes):
            mapping["in_height"], mapping["in_width"] = sizes  # type: ignore[assignment]
        if cls.sized:
            if "in_height" not in mapping:
                raise Unsupported(f"the input size of a call of '{name}'")
            keywords.append(f"in_size=({mapping['in_height'].text}, {mapping['in_width'].text})")
        text = f"{cls.name}({', '.join([*args, *keywords])})"
        out = substitute(cls.out, mapping)
        keeps = substitute(cls.keeps, mapping)
        stride = substitute(cls.stride, mapping)
        total_keeps = sym.all_of([first.keeps, keeps]) if first.keeps and keeps else None
        total_stride = sym.mul(first.stride, stride) if first.stride and stride else None
        spatial: tuple[Expr | None, ...] = (
            tuple(first.shape[1:])
            if total_keeps is not None and keeps is not None and keeps.constant and keeps.value
            else (None,) * (len(first.shape) - 1)
        )
        if self.track_size and len(cls.spatial) == len(spatial) and "in_height" in mapping:
            spatial = tuple(substitute(d, mapping) for d in cls.spatial)

        def result(ref: str) -> Tensor:
            channels = out if out is not None else sym.code(f"{ref}.out_channels")
            return Tensor("", (channels, *spatial), total_keeps, total_stride, cls.overwritable)

        return text, result, out is None

    # ---- conditions and channel bookkeeping -------------------------------------------------

    def _condition(self, entry: dict[str, Any], ctx: Ctx) -> Expr | None:
        if "if" not in entry:
            return None
        return pyexpr.value(entry["if"], ctx.env, self.needs)

    def _materialize(self, current: Tensor, ctx: Ctx) -> Tensor:
        """The channel count in a variable, so that a loop or a conditional may update it (and,
        where sizes are tracked, the height and width)."""
        dims = list(current.shape)
        wanted = ["channels"] + (["height", "width"] if self.track_size and len(dims) == 3 else [])
        for i, base in enumerate(wanted):
            dim = dims[i]
            if dim is not None and dim.text in ctx.counters:
                continue
            if dim is None and i > 0:
                continue  # an unknown size stays unknown
            name = ctx.names.fresh(base)
            ctx.init.line(f"{name} = {dim.text if dim is not None else 0}")
            dims[i] = sym.code(name)
            ctx.counters.add(name)
        return Tensor(current.var, tuple(dims), current.keeps, current.stride, current.overwritable)

    def _assign_channels(self, before: Tensor, after: Tensor, ctx: Ctx) -> None:
        """The variables of `before` (see `_materialize`) set to `after`'s values."""
        old, new = before.shape[0], after.shape[0] if after.shape else None
        if new is None or old is None:
            raise Unsupported("channels through a loop or a condition")
        if new.text != old.text:
            ctx.init.line(f"{old.text} = {new.text}")
        for old_dim, new_dim in zip(before.shape[1:], after.shape[1:], strict=False):
            if old_dim is None or new_dim is None or old_dim.text not in ctx.counters:
                continue
            if new_dim.text != old_dim.text:
                ctx.init.line(f"{old_dim.text} = {new_dim.text}")

    def _after_loop(self, before: Tensor, after: Tensor, ctx: Ctx) -> Tensor:
        spatial = tuple(
            a
            if a is not None and b is not None and (a.text == b.text or a.text in ctx.counters)
            else None
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

    def _argument(self, raw: Any, p: Param, ctx: Ctx, index: tuple[str, str] | None) -> Expr:
        """A block call's value for `p`: a list gives a value per repeat unless `p` is a list."""
        if index is not None and p.type not in WHOLE_VALUES:
            raw = list_items(raw) or raw  # `${[s, 1]}` as [$s, 1]
        if index is not None and isinstance(raw, list) and p.type not in WHOLE_VALUES:
            values = [pyexpr.value(v, ctx.env, self.needs) for v in raw]
            i = index[0]
            if len(values) == 1:
                return values[0]
            if len(values) == 2:
                return sym.choose(sym.code(f"{i} == 0"), values[0], values[1])
            items = ", ".join(v.text for v in values)
            return sym.code(f"({items})[min({i}, {len(values) - 1})]")
        return pyexpr.value(raw, ctx.env, self.needs)

    # written by ChainWriter; a block's body calls modules, and a module may be a chain
    def _is_chain(self, layers: Any) -> bool:
        raise NotImplementedError

    def _chain(self, layers: Any, target: str, start: Tensor, ctx: Ctx) -> Tensor:
        raise NotImplementedError
