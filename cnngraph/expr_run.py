"""Expressions run: each text compiled once into nested closures, which spend a budget of
work as they go (one step per node, and the size of every list or text they make).

Closures rather than a walk of the syntax tree, which dispatched on every node's type at every
evaluation: `stages[row][0]` took 8 µs walked and takes under 4 µs compiled.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from .errors import did_you_mean
from .expr_syntax import (
    BINARY,
    COMPARE,
    CONSTANT_NAMES,
    FUNCTIONS,
    INVALID,
    MAX_INT,
    MAX_LIST,
    MAX_TOTAL_WORK,
    MAX_WORK,
    ExprError,
    NeedsShape,
    Pending,
    ReadsInvalid,
    Resolver,
    compile_expression,
)

_ABSENT = object()


class Budget:
    """The work one evaluation may still do, shared by the scopes of its comprehensions."""

    def __init__(self, left: int) -> None:
        self.left = left
        self.spent = 0
        self.shared = False  # what is left is the compile's, not one expression's

    def spend(self, units: int) -> None:
        self.left -= units
        self.spent += units
        if self.left < 0:
            what = (
                f"the spec's expressions together do too much work (over {MAX_TOTAL_WORK:,}"
                if self.shared
                else f"expression does too much work (over {MAX_WORK:,}"
            )
            raise ExprError(
                "CG304",
                f"{what} steps and list items)",
                "expressions compute sizes and small tables; build big structures with "
                "`repeat` and `for`",
            )

    def bounded(self, value: Any) -> Any:
        """`value`, if within the limits on numbers and lengths; its size is spent."""
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise ExprError("CG304", f"result {value} is too large")
        if isinstance(value, float) and not math.isfinite(value):
            raise ExprError("CG304", "result is not a finite number")
        if isinstance(value, str):
            self.spend(len(value))
            if len(value) > MAX_LIST:
                raise ExprError("CG304", "result is too long")
        if isinstance(value, list) and self.items(value) > MAX_LIST:
            raise ExprError("CG304", "result is too long")
        return value

    def items(self, value: list[Any]) -> int:
        """How many items `value` holds, nested lists in full: `[[[0] * 9999] * 9999] * 9999`
        is three small lists, but 10**12 items to anything that compares or walks it. Each
        list is spent twice, on the way down and on the way back up."""
        for item in value:
            if isinstance(item, list):
                break
        else:  # flat, as most are: no walk
            self.spend(len(value))
            self.spend(len(value))  # (in two steps, as the walk: it may run out after one)
            return len(value)
        sizes: dict[int, int] = {}
        todo: list[tuple[list[Any], bool]] = [(value, False)]
        while todo:
            items, walked = todo.pop()
            if id(items) in sizes:
                continue
            self.spend(len(items))
            if walked:
                nested = sum(sizes[id(v)] for v in items if isinstance(v, list))
                sizes[id(items)] = len(items) + nested
            else:
                todo.append((items, True))
                todo.extend((v, False) for v in items if isinstance(v, list))
        return sizes[id(value)]


class _Scope(Mapping[str, Any]):
    """One name bound over the names of an outer scope."""

    def __init__(self, name: str, value: Any, outer: Mapping[str, Any]) -> None:
        self.name, self.value, self.outer = name, value, outer

    def __getitem__(self, key: str) -> Any:
        return self.value if key == self.name else self.outer[key]

    def __contains__(self, key: object) -> bool:
        return key == self.name or key in self.outer

    def __iter__(self) -> Iterator[str]:
        yield self.name
        yield from (k for k in self.outer if k != self.name)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def read_name(name: str, env: Mapping[str, Any], resolve: Resolver | None) -> Any:
    value = env.get(name, _ABSENT)
    if value is _ABSENT:
        if name in CONSTANT_NAMES:
            return CONSTANT_NAMES[name]
        raise ExprError(
            "CG302",
            f"unknown name '{name}' in expression",
            did_you_mean(name, env) or "names are model params, block params, or in_channels",
        )
    if value is INVALID:
        raise ReadsInvalid(name)
    if isinstance(value, Pending):
        if resolve is None:
            raise NeedsShape(name)
        return resolve(value)
    return value


class Run:
    """What one evaluation reads: the names in scope, how to resolve a Pending value, and the
    budget its steps are charged to (shared with the scopes of its comprehensions)."""

    __slots__ = ("budget", "env", "resolve")

    def __init__(self, env: Mapping[str, Any], resolve: Resolver | None, budget: Budget) -> None:
        self.env, self.resolve, self.budget = env, resolve, budget

    def within(self, scope: Mapping[str, Any]) -> Run:
        return Run(scope, self.resolve, self.budget)


_Code = Callable[[Run], Any]


@lru_cache(maxsize=4096)
def program(text: str) -> _Code:
    """The expression as nested closures, made once per text (a spec repeats a few hundred)."""
    return _code(compile_expression(text))


def _code(node: ast.expr) -> _Code:
    """Code for one node. Every node spends one step before its operands; what a node makes
    (not what a name or a constant holds: that was bounded when it was made) is bounded."""
    return _MAKERS[type(node)](node)


def _constant(node: ast.Constant) -> _Code:
    value = node.value

    def run(r: Run) -> Any:
        r.budget.spend(1)
        return value

    return run


def _name(node: ast.Name) -> _Code:
    name = node.id

    def run(r: Run) -> Any:
        r.budget.spend(1)
        return read_name(name, r.env, r.resolve)

    return run


def _binop(node: ast.BinOp) -> _Code:
    left, right = _code(node.left), _code(node.right)
    kind, func = type(node.op), BINARY[type(node.op)]

    def run(r: Run) -> Any:
        r.budget.spend(1)
        a, b = left(r), right(r)
        if kind is ast.Pow and _too_big_power(a, b):
            raise ExprError("CG304", f"{a!r} ** {b!r} is too large")
        if kind is ast.Mult and _too_big_repeat(a, b):
            raise ExprError("CG304", "list or string repetition is too large")
        if kind is ast.Mod and isinstance(a, str):
            _check_format(a)
        return r.budget.bounded(_apply(func, a, b))

    return run


_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}


def _unaryop(node: ast.UnaryOp) -> _Code:
    operand, func = _code(node.operand), _UNARY[type(node.op)]

    def run(r: Run) -> Any:
        r.budget.spend(1)
        return r.budget.bounded(_apply(func, operand(r)))

    return run


def _boolop(node: ast.BoolOp) -> _Code:
    is_and, items = isinstance(node.op, ast.And), [_code(v) for v in node.values]

    def run(r: Run) -> Any:
        r.budget.spend(1)
        value: Any = is_and
        for item in items:
            value = item(r)
            if bool(value) != is_and:
                break
        return r.budget.bounded(value)

    return run


def _compare(node: ast.Compare) -> _Code:
    first = _code(node.left)
    pairs = zip(node.ops, node.comparators, strict=True)
    rest = [(COMPARE[type(op)], _code(c)) for op, c in pairs]

    def run(r: Run) -> Any:
        r.budget.spend(1)
        left = first(r)
        for func, comparator in rest:
            right = comparator(r)
            for side in (left, right):  # comparing or searching lists walks them
                if isinstance(side, (list, str)):
                    r.budget.spend(len(side))
            if not _apply(func, left, right):
                return False
            left = right
        return True

    return run


def _ifexp(node: ast.IfExp) -> _Code:
    test, body, orelse = _code(node.test), _code(node.body), _code(node.orelse)

    def run(r: Run) -> Any:
        r.budget.spend(1)
        return r.budget.bounded(body(r) if test(r) else orelse(r))

    return run


def _call(node: ast.Call) -> _Code:
    name = node.func.id if isinstance(node.func, ast.Name) else ""
    func = FUNCTIONS[name]  # _check_allowed admitted only whitelisted names
    args = [_code(a) for a in node.args]
    keywords = [(k.arg, _code(k.value)) for k in node.keywords if k.arg is not None]

    def run(r: Run) -> Any:
        r.budget.spend(1)
        values = [a(r) for a in args]
        kwargs = {k: v(r) for k, v in keywords}
        return r.budget.bounded(_apply(func, *values, name=name, **kwargs))

    return run


def _list(node: ast.List | ast.Tuple) -> _Code:
    items = [_code(e) for e in node.elts]

    def run(r: Run) -> Any:
        r.budget.spend(1)
        return r.budget.bounded([item(r) for item in items])

    return run


def _listcomp(node: ast.ListComp) -> _Code:
    """[elt for a in xs if c for b in ys ...]: each name bound in a child scope, layered over
    the outer names (copying them for every item would be quadratic)."""
    generators = []
    for generator in node.generators:
        assert isinstance(generator.target, ast.Name)  # _check_allowed saw to it
        tests = [_code(t) for t in generator.ifs]
        generators.append((generator.target.id, _code(generator.iter), tests))
    element = _code(node.elt)

    def run(r: Run) -> Any:
        r.budget.spend(1)
        scopes: list[Mapping[str, Any]] = [r.env]
        for name, iterable, tests in generators:
            bound: list[Mapping[str, Any]] = []
            for scope in scopes:
                values = iterable(r.within(scope))
                if not isinstance(values, list):
                    raise ExprError("CG304", f"a comprehension runs over a list, not {values!r}")
                for value in values:
                    child = _Scope(name, value, scope)
                    inner = r.within(child)
                    if all(test(inner) for test in tests):
                        bound.append(child)
                if len(bound) > MAX_LIST:
                    raise ExprError("CG304", "result is too long")
            scopes = bound
        return r.budget.bounded([element(r.within(scope)) for scope in scopes])

    return run


def _subscript(node: ast.Subscript) -> _Code:
    container, target = _code(node.value), node.value
    if isinstance(node.slice, ast.Slice):
        parts = [
            None if p is None else _code(p)
            for p in (node.slice.lower, node.slice.upper, node.slice.step)
        ]

        def run_slice(r: Run) -> Any:
            r.budget.spend(1)
            values = container(r)
            bounds = [None if p is None else p(r) for p in parts]
            return r.budget.bounded(_apply(lambda c: c[slice(*bounds)], values))

        return run_slice
    index_of = _code(node.slice)

    def run(r: Run) -> Any:
        r.budget.spend(1)
        values, index = container(r), index_of(r)
        if isinstance(values, list | str) and isinstance(index, int):
            size = len(values)
            if not -size <= index < size:
                what = f"'{ast.unparse(target)}'"
                raise ExprError(
                    "CG304",
                    f"index {index} is out of range: {what} has {size} item(s)",
                    f"indexes run from 0 to {size - 1}" if size else f"{what} is empty",
                )
        return r.budget.bounded(_apply(operator.getitem, values, index))

    return run


_MAKERS: dict[type[ast.expr], Callable[[Any], _Code]] = {
    ast.Constant: _constant,
    ast.Name: _name,
    ast.BinOp: _binop,
    ast.UnaryOp: _unaryop,
    ast.BoolOp: _boolop,
    ast.Compare: _compare,
    ast.IfExp: _ifexp,
    ast.Call: _call,
    ast.List: _list,
    ast.Tuple: _list,
    ast.ListComp: _listcomp,
    ast.Subscript: _subscript,
}


def _apply(func: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any) -> Any:
    try:
        return func(*args, **kwargs)
    except ZeroDivisionError:
        raise ExprError(
            "CG304", "division by zero", "check the divisor's params: one of them is 0"
        ) from None
    except (TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
        what = f"{name}(): " if name else ""
        raise ExprError(
            "CG304",
            f"{what}{exc}",
            "check the types and values of the params the expression reads",
        ) from None


def _too_big_power(base: Any, exponent: Any) -> bool:
    if not isinstance(base, (int, float)) or not isinstance(exponent, (int, float)):
        return False
    if abs(base) <= 1:
        return False
    return bool(exponent * math.log2(abs(base)) > 64)


def _too_big_repeat(left: Any, right: Any) -> bool:
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (list, str)) and isinstance(count, int) and not isinstance(count, bool):
            return len(seq) * count > MAX_LIST
    return False


_FORMAT_FIELD = re.compile(r"%%|%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_format(template: str) -> None:
    """`'%5d' % x` is fine; a width or precision of 10**10 would build the text first."""
    for match in _FORMAT_FIELD.finditer(template):
        for size in match.groups():
            if size == "*" or (size is not None and int(size) > MAX_LIST):
                raise ExprError(
                    "CG304",
                    f"format '{match[0]}': widths and precisions are numbers up to {MAX_LIST}",
                )
