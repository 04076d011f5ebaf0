"""Blocks with a forward of their own: graphs of named layers, joins, residual and gate edges."""

from __future__ import annotations

from typing import Any

from ... import symbolic as sym
from ...ops import OPS
from ...ops.base import Fields
from ...ops.conv import one_stride
from ...spec import ENTRY_KEYS, BlockDef, ResidualSpec
from . import pyexpr
from .chains import ChainWriter
from .pyexpr import Unsupported
from .spec_layers import (
    SEQUENCE,
    entry_of,
    is_entry,
    pairs,
    referenced_names,
)
from .values import (
    Ctx,
    Tensor,
)
from .writer import Writer, literal_text


class ForwardWriter(ChainWriter):
    """Writes blocks whose forward is a graph: named layers, joins, residual edges."""

    def _block_body(self, bdef: BlockDef, sources: list[Tensor], ctx: Ctx) -> Tensor:
        residual_first = bdef.residual_first
        body_init = Writer()
        saved_init, ctx.init = ctx.init, body_init
        names = {n: t for n, t in zip(bdef.inputs, sources, strict=True)}
        if bdef.layers is not None:
            out = self._graph(bdef.layers, sources[0], names, ctx)
        else:
            outs = []
            for branch, layers in (bdef.branches or {}).items():
                entry = (
                    entry_of(layers)
                    if is_entry(layers)
                    else {SEQUENCE: layers}
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
                if not isinstance(bdef.then, str) and not is_entry(bdef.then)
                else {"then": bdef.then}
            )
            out = self._graph(then, out, names, ctx)
        if bdef.output is not None:
            if bdef.output not in names:
                raise Unsupported(f"output '{bdef.output}'")
            out = names[bdef.output]
        ctx.fwd.line(f"return {out.var}")
        return out

    @staticmethod
    def _sources(entry: dict[str, Any], names: dict[str, Tensor], prev: Tensor) -> list[Tensor]:
        """A layer's inputs: those `from:` names, else the layer before it."""
        if "from" not in entry:
            return [prev]
        refs = entry["from"] if isinstance(entry["from"], list) else [entry["from"]]
        if any(r not in names for r in refs):
            raise Unsupported(f"`from: {entry['from']}`")
        return [names[r] for r in refs]

    def _graph(self, layers: Any, start: Tensor, names: dict[str, Tensor], ctx: Ctx) -> Tensor:
        """Named layers with their own attributes and forward lines (a DAG by `from:`)."""
        referenced = referenced_names(layers)
        prev = start
        for key, entry in pairs(layers):
            if key is None:
                raise Unsupported("a numbered layer in a block with a forward of its own")
            srcs = self._sources(entry, names, prev)
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
        if not key.isidentifier():
            raise Unsupported(f"layer name '{key}'")
        attr = key  # an attribute: the spec's name as it is (state_dict keys are the spec's)
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
        return self._loop_body(loop, self._copy(entry, container, ctx), current, ctx)

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
            name = spec.projection  # an attribute, as the spec names it
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
                conv += f", stride={literal_text(stride)}"
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
