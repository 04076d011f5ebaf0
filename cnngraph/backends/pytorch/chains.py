"""Blocks that are chains of layers: `nn.Sequential` bodies, loops for `repeat:`/`for:`, spread
blocks and per-repeat values."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ... import symbolic as sym
from ...expr import list_items
from ...ops import OPS
from ...params import WHOLE_VALUES
from ...spec import ENTRY_KEYS
from ...symbolic import Expr
from . import pyexpr
from .modules import ModuleWriter
from .pyexpr import Unsupported
from .spec_layers import (
    Param,
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

Index = tuple[str, str] | None  # a loop's (index variable, count), where copies need it
Loop = tuple[str, dict[str, Expr], Index]  # its `for` line, the names it binds, its index
Row = tuple[Any, ...]

# keys that make a sequence entry several layers, or none
_VARYING = frozenset({"if", "repeat", "for", "spread"})


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
        """Layers built into an nn.Sequential `target`, in order; returns the result. A run of
        calls of one block with literal arguments is written as a table and a loop."""
        current = start
        items = list(pairs(layers))
        at = 0
        while at < len(items):
            run = self._table_run(items[at:])
            table = self._table(run) if len(run) >= 3 else None
            if table is not None:
                current = self._table_loop(*table, target, current, ctx)
                at += len(run)
                continue
            key, entry = items[at]
            # a numbered layer's index, where every layer before it is there at any params
            fixed = all(isinstance(e, str) or not _VARYING & e.keys() for _, e in items[:at])
            self.position = at if fixed and key is None else None
            current = self._chain_entry(key, entry, target, current, ctx)
            at += 1
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
        return self._loop_body(loop, self._copy(entry, inner_target, ctx), current, ctx)

    def _copy(
        self, entry: dict[str, Any], target: str, ctx: Ctx
    ) -> Callable[[Tensor, Index], Tensor]:
        """The body of a `repeat:`/`for:` loop: one copy of the entry added to `target`."""

        def body(current: Tensor, index: Index) -> Tensor:
            if entry.get("spread"):
                return self._spread(entry, target, current, ctx, index)
            return self._add_to(target, None, entry, current, ctx, index)

        return body

    def _loop_body(
        self, loop: Loop, body: Callable[[Tensor, Index], Tensor], current: Tensor, ctx: Ctx
    ) -> Tensor:
        """The loop statement and its body, the channel variable updated per pass."""
        header_line, env, index = loop
        ctx.init.line(header_line)
        taken = set(ctx.names.taken)
        saved = dict(ctx.env)
        ctx.env.update(env)
        with ctx.init.indent():
            after = body(current, index)
            self._assign_channels(current, after, ctx)
        ctx.env = saved
        result = self._after_loop(current, after, ctx)
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
            (isinstance(v, list) or list_items(v) is not None) and k not in ENTRY_KEYS
            for k, v in entry.items()
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
            size = _range_count(values.text)
            if needs_index and size is not None:  # over range(n) the index is the value
                return f"for {py} in {values.text}:", bound, (py, size)
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
        self._no_such_choice(choice, names, ctx)
        shape = tuple(
            _chosen(current.shape[i], [r.shape[i] for r in results], ctx)
            for i in range(len(results[0].shape))
        )
        first = results[0]
        merged = Tensor(first.var, shape, first.keeps, first.stride, first.overwritable)
        return self._after_loop(current, merged, ctx)

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
            return self._chain(bdef.layers, target, current, ctx)
        finally:
            ctx.env = saved

    def _table_run(self, items: list[tuple[str | None, dict[str, Any]]]) -> list[dict[str, Any]]:
        """The numbered calls of one block at the start of `items`, with no keys but the
        block's params and `repeat:`."""
        run: list[dict[str, Any]] = []
        for key, entry in items:
            block = entry.get("block")
            if key is not None or not isinstance(block, str) or block not in self.spec.blocks:
                break
            if run and block != run[0]["block"]:
                break
            allowed = {"block", "repeat", *self.spec.blocks[block].params}
            if set(entry) - allowed:
                break
            run.append(entry)
        return run

    def _table(self, run: list[dict[str, Any]]) -> tuple[str, list[Column], list[Row]] | None:
        """The run as (block, columns, rows) when every value is a literal: MobileNetV3's
        `large` is torchvision's `inverted_residual_setting`, MobileNetV2's rows (t, c, n, s)
        take `repeat:` and a per-repeat stride `[2, 1]` (a column for the first copy)."""
        block = run[0]["block"]
        params = {p.name: p for p in parse_params(self.spec.blocks[block].params)}
        names = list(dict.fromkeys(k for e in run for k in e if k != "block"))
        if any(type(e.get("repeat", 1)) is not int for e in run):
            return None
        columns: list[Column] = []
        for name in names:
            p = params.get(name)
            if p is not None and p.type in WHOLE_VALUES:
                return None  # a list value is a value here, not a value per copy
            values = []
            for e in run:
                if name not in e and p is not None and (p.required or p.computed):
                    return None
                value = e.get(name, p.default if p is not None else 1)
                pair = value if isinstance(value, list) else [value, value]
                if len(pair) != 2 or not all(_literal_scalar(v) for v in pair):
                    return None
                values.append((pair, e.get("repeat", 1)))
            if not any(isinstance(e.get(name), list) for e in run):
                columns.append(Column(name, p, None))
                continue
            # a value per copy: the first is the column's, the rest must agree across rows
            rests = {rest for (_first, rest), copies in values if copies > 1}
            if p is None or len(rests) > 1 or "repeat" not in names:
                return None
            columns.append(Column(name, p, rests.pop() if rests else values[0][0][1]))
        if len(columns) < 2:
            return None  # one value per call reads better as the calls themselves
        rows = []
        for e in run:
            row = []
            for c in columns:
                default = c.param.default if c.param is not None else 1
                value = e.get(c.name, default)
                row.append(value[0] if isinstance(value, list) else value)
            rows.append(tuple(row))
        return block, columns, rows

    def _table_loop(
        self,
        block: str,
        columns: list[Column],
        rows: list[Row],
        target: str,
        current: Tensor,
        ctx: Ctx,
    ) -> Tensor:
        """The table as a tuple of rows, and the block's calls in a loop over it."""
        hints = [
            "int" if c.param is None else param_hint(c.param.type, [row[i] for row in rows])
            for i, c in enumerate(columns)
        ]
        ctx.init.line(f"# {', '.join(c.name for c in columns)}")
        row_type = f"tuple[{', '.join(hints)}]"
        if len(row_type) > 60 or "Any" in row_type:  # a declaration that fits on its line
            row_type = "tuple[Any, ...]"
            self.needs.add("Any")
        table = ctx.declare("settings", f"tuple[{row_type}, ...]", "(")
        with ctx.init.indent():
            for row in rows:
                ctx.init.line(f"{literal_text(sym.const(row))},")
        ctx.init.line(")")
        locals_ = [ctx.names.fresh(c.name) for c in columns]
        env = {f"column_{c.name}": sym.code(v) for c, v in zip(columns, locals_, strict=True)}
        entry: dict[str, Any] = {"block": block}
        for c, name in zip(columns, env, strict=True):
            entry[c.name] = f"${{{name}}}" if c.rest is None else [f"${{{name}}}", c.rest]
        header = f"for {', '.join(locals_)} in {table}:"
        if len(header) + 4 * ctx.init.depth > 99:
            header = "for (\n" + "".join(f"    {name},\n" for name in locals_) + f") in {table}:"
        current = self._materialize(current, ctx)

        def body(current: Tensor, _index: Index) -> Tensor:
            return self._chain_copies(None, entry, target, current, ctx)

        result = self._loop_body((header, env, None), body, current, ctx)
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
        name = self._copy_name(entry, key, ctx, index)
        if "init" in entry:
            if target == "self" and name is not None and name.isidentifier():
                attribute: str | None = f"self.{name}"
            elif name is None and index is None and self.position is not None:
                attribute = f"{target}[{self.position}]"
            else:
                attribute = None
            entry = self._own_init(entry, attribute, ctx)
        text, result, needs_ref = self._module(entry, [current], ctx, index)
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


@dataclass(frozen=True)
class Column:
    """A column of a table of block calls: a param of the block, or `repeat` (param None)."""

    name: str
    param: Param | None
    rest: Any  # for a per-repeat value [first, rest]: the value of every copy after the first


def _literal_scalar(value: Any) -> bool:
    """A value a table may hold as written: no expression, no `$$` escape to undo."""
    if isinstance(value, str):
        return "$" not in value
    return isinstance(value, (bool, int, float))


def _range_count(text: str) -> str | None:
    """`n` for `range(n)`, where a loop's index and value are one."""
    node = ast.parse(text, mode="eval").body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None
    if node.func.id == "range" and len(node.args) == 1 and not node.keywords:
        return ast.unparse(node.args[0])
    return None


def _chosen(before: Expr | None, dims: list[Expr | None], ctx: Ctx) -> Expr | None:
    """A dimension after a choice of blocks: known where every choice gives the same, or where
    each choice has set the variable that held it before."""
    known = [d for d in dims if d is not None]
    if len(known) < len(dims):
        return None
    if all(d.text == known[0].text for d in known):
        return known[0]
    return before if before is not None and before.text in ctx.counters else None
