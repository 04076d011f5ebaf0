"""Blocks that are chains of layers: `nn.Sequential` bodies, loops for `repeat:`/`for:`, spread
blocks and per-repeat values."""

from __future__ import annotations

from typing import Any

from ... import symbolic as sym
from ...ops import OPS
from ...symbolic import Expr
from . import pyexpr
from .modules import ModuleWriter
from .pyexpr import Unsupported
from .spec_layers import (
    ENTRY_KEYS,
    Param,
    entry_of,
    pairs,
    param_hint,
    parse_params,
    template_parts,
)
from .values import (
    Ctx,
    Tensor,
    defined_in,
    free_names,
)
from .writer import Writer, literal_text, python_name


class ChainWriter(ModuleWriter):
    """Writes chains of layers into `nn.Sequential` containers."""

    def _is_chain(self, layers: Any) -> bool:
        """Whether every layer takes the previous one's result and is a module."""
        for _key, entry in pairs(layers):
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
        for key, entry in pairs(layers):
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
            if new is not None and defined_in(new, inner):
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
        taken = set(ctx.names.taken)
        saved = dict(ctx.env)
        ctx.env.update(env)
        with ctx.init.indent():
            if entry.get("spread"):
                after = self._spread(entry, target, current, ctx, index)
            else:
                after = self._add_to(target, None, entry, current, ctx, index)
            self._assign_channels(current, after, ctx)
        ctx.env = saved
        result = self._after_loop(current, after)
        # the loop's names are free again unless what follows reads them: the next loop
        # counts with `i` and names its block `layer` too, as a person would write it
        bound = {e.text for e in env.values()} | ({index[0]} if index else set())
        bound |= ctx.names.taken - taken
        exprs = [*result.shape, result.keeps, result.stride]
        if not any(bound & free_names(e) for e in exprs if e is not None and not e.constant):
            ctx.names.taken -= bound
        return result

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
            expected = ", ".join(repr(n) for n in names)
            ctx.init.line(
                f'raise ValueError(f"expected one of {expected}, got {{{choice.text}!r}}")'
            )
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
        for p in parse_params(bdef.params):
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
            table = self._table(bdef.layers)
            if table is not None:
                return self._table_loop(*table, target, current, ctx)
            return self._chain(bdef.layers, target, current, ctx)
        finally:
            ctx.env = saved

    def _table(self, layers: list[Any]) -> tuple[str, list[Param], list[tuple[Any, ...]]] | None:
        """Calls of one block with literal arguments, as a table (block, columns, rows):
        `large` in MobileNetV3 is torchvision's `inverted_residual_setting`."""
        entries = [entry_of(raw) for raw in layers]
        blocks = {e.get("block") for e in entries}
        if len(entries) < 3 or len(blocks) != 1:
            return None
        block = blocks.pop()
        if not isinstance(block, str) or block not in self.spec.blocks:
            return None
        params = parse_params(self.spec.blocks[block].params)
        given = {k for e in entries for k in e if k != "block"}
        if given - {p.name for p in params}:
            return None  # other keys (if, repeat, names, ...) need their own code
        columns = [p for p in params if p.name in given]
        rows = []
        for e in entries:
            row = []
            for p in columns:
                value = e.get(p.name, p.default)
                if p.name not in e and (p.required or p.computed):
                    return None
                if not isinstance(value, (bool, int, float, str)) or pyexpr.names_in(value):
                    return None
                row.append(value)
            rows.append(tuple(row))
        return block, columns, rows

    def _table_loop(
        self,
        block: str,
        columns: list[Param],
        rows: list[tuple[Any, ...]],
        target: str,
        current: Tensor,
        ctx: Ctx,
    ) -> Tensor:
        """The table as a tuple of rows and one call per row in a loop."""
        hints = [param_hint(p.type, [row[i] for row in rows]) for i, p in enumerate(columns)]
        table = ctx.declare("settings", f"tuple[tuple[{', '.join(hints)}], ...]")
        ctx.init.line(f"{table} = (  # {', '.join(p.name for p in columns)}")
        with ctx.init.indent():
            for row in rows:
                ctx.init.line(f"{literal_text(sym.const(row))},")
        ctx.init.line(")")
        locals_ = [ctx.names.fresh(p.name) for p in columns]
        env = {f"column_{p.name}": sym.code(v) for p, v in zip(columns, locals_, strict=True)}
        entry = {
            "block": block,
            **{p.name: f"${{{name}}}" for p, name in zip(columns, env, strict=True)},
        }
        header = f"for {', '.join(locals_)} in {table}:"
        current = self._materialize(current, ctx)
        result = self._loop_body((header, env, None), entry, target, current, ctx)
        ctx.names.taken.discard(table)
        return result

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
        for text, name, _spec, _conv in template_parts(template):
            parts.append(text.replace("{", "{{").replace("}", "}}"))
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
