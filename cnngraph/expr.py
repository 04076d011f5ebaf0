"""Safe expressions over params: a whitelisted subset of Python syntax, evaluated on its AST.

`$width` is a reference; `${width * 4}` an expression. Nothing here calls eval, reads
attributes, or calls a function outside FUNCTIONS.
"""

from __future__ import annotations

import ast
import contextlib
import math
import operator
import re
import struct
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from .errors import did_you_mean

# (a sum of n terms is n deep; evaluating recurses once per level)
MAX_EXPRESSION_DEPTH = 100
MAX_EXPRESSION_CHARS = 1000
MAX_INT = 2**63  # far beyond any real layer size, small enough to keep arithmetic cheap
MAX_LIST = 10_000  # items in a list (nested lists counted in full) or characters in a text
# Steps and list items one evaluation may spend (about a microsecond each): far beyond any
# real spec's expression (a 1,000-item comprehension costs about 10,000) ...
MAX_WORK = 200_000
# ... and all the evaluations of one compile together (a 50,000-layer spec spends about 20 per
# layer): a file cannot multiply the first limit by its number of layers.
MAX_TOTAL_WORK = 2_000_000
_TOTAL_WORK: ContextVar[list[int] | None] = ContextVar("cnngraph_total_work", default=None)
_RESULTS: ContextVar[dict[tuple[Any, ...], tuple[Any, int]] | None] = ContextVar(
    "cnngraph_results", default=None
)

_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")


class ExprError(Exception):
    """A user's expression is wrong; carries a diagnostic code and a hint."""

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


class ReadsInvalid(Exception):
    """The expression reads a value whose own evaluation failed (reported there): no second
    error follows from the first."""


class NeedsShape(Exception):
    """The expression reads a value (`in_channels`) that only shape inference can provide."""


class Pending:
    """A value known only once shapes are inferred; shape inference resolves it."""


class ShapeSymbol(Pending):
    """`in_channels` of a block: the channel count of the tensor entering node `node`."""

    def __init__(self, node: str) -> None:
        self.node = node

    def __repr__(self) -> str:
        return f"ShapeSymbol({self.node})"


class Deferred(Pending):
    """An expression that reads a Pending value; evaluated again during shape inference."""

    def __init__(self, text: str, env: Mapping[str, Any]) -> None:
        self.text = text
        self.env = env

    def __repr__(self) -> str:
        return f"Deferred(${{{self.text}}})"


Resolver = Callable[[Pending], Any]


class _Invalid:
    """A value whose evaluation failed (already reported); nodes holding it are not validated."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID = _Invalid()


def contains_pending(value: Any) -> bool:
    if isinstance(value, Pending):
        return True
    if isinstance(value, list):
        return any(contains_pending(v) for v in value)
    return False


def contains_invalid(value: Any) -> bool:
    if value is INVALID:
        return True
    if isinstance(value, list):
        return any(contains_invalid(v) for v in value)
    return False


def _range(*args: int) -> list[int]:
    """`range` as a list, refused before it is built when it would be too long."""
    numbers = range(*args)
    if len(numbers) > MAX_LIST:
        raise ValueError(f"range of {len(numbers)} values is too long")
    return list(numbers)


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """Round `value` to a multiple of `divisor`, never going down by more than 10%.

    The rule MobileNet and EfficientNet use for channel counts.
    """
    if divisor <= 0:
        raise ValueError("divisor must be positive")
    floor_value = divisor if min_value is None else min_value
    new = max(floor_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def float32(value: float) -> float:
    """`value` rounded to the nearest single-precision float: torch computes in float32 by
    default, and rounding each step as it does reproduces its results (RegNet's widths)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"float32() takes a number, not {value!r}")
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _sum(values: list[Any], start: Any = 0) -> Any:
    """`sum`, in linear time for lists too (Python's own copies the total once per list)."""
    if not isinstance(start, list):
        return sum(values, start)
    total = list(start)
    for value in values:
        if not isinstance(value, list):
            raise TypeError(f"can only add lists to a list, not {value!r}")
        total.extend(value)
        if len(total) > MAX_LIST:
            raise ValueError("result is too long")
    return total


def _round(value: float, ndigits: int | None = None) -> float:
    return round(value) if ndigits is None else round(value, ndigits)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "ceil": math.ceil,
    "floor": math.floor,
    "float": float,
    "float32": float32,
    "int": int,
    "len": len,
    "log": math.log,
    "make_divisible": make_divisible,
    "range": _range,
    "max": max,
    "min": min,
    "round": _round,
    "sqrt": math.sqrt,
    "sum": _sum,
}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_CONSTANT_NAMES = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}


def list_items(value: object) -> list[str] | None:
    """The items of a list written as an expression, `${[s, 1]}`, each as an expression
    (`["${s}", "${1}"]`); None for any other value."""
    if not isinstance(value, str) or not value.startswith("${"):
        return None
    items = _list_items(value)  # every call site of a block asks, once per compile
    return None if items is None else list(items)


@lru_cache(maxsize=4096)
def _list_items(value: str) -> tuple[str, ...] | None:
    try:
        text = source_of(value)
        tree = ast.parse((text or "").strip(), mode="eval")
    except (ExprError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None  # evaluating it reports why
    if not isinstance(tree.body, ast.List):
        return None
    items = [ast.get_source_segment((text or "").strip(), item) for item in tree.body.elts]
    return None if None in items else tuple(f"${{{item}}}" for item in items)


def source_of(value: object) -> str | None:
    """The expression text if `value` is a `$name` or `${...}` string, else None."""
    if not isinstance(value, str) or not value.startswith("$"):
        return None
    return _source_text(value)


@lru_cache(maxsize=8192)
def _source_text(value: str) -> str:
    """What source_of finds, once per text: a spec repeats a few thousand of them."""
    if value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    match = _REFERENCE.match(value)
    if match:
        return match.group(1)
    raise ExprError(
        "CG301",
        f"'{value}' is neither a reference ($name) nor an expression (${{...}})",
        "write $width for a param or ${width * 2} for an expression",
    )


@lru_cache(maxsize=4096)
def compile_expression(text: str) -> ast.expr:
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExprError("CG301", f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError("CG301", f"cannot parse expression '{text}': {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExprError("CG301", "expression is nested too deeply to parse") from None
    if _depth(tree) > MAX_EXPRESSION_DEPTH:
        raise ExprError(
            "CG301", f"expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep"
        )
    for node in ast.walk(tree):
        _check_allowed(node)
    return tree.body


def _depth(tree: ast.AST) -> int:
    """The nesting depth of a syntax tree, without recursion."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _check_allowed(node: ast.AST) -> None:
    allowed = (
        ast.Expression,
        ast.Constant,
        ast.Name,
        ast.BinOp,
        ast.UnaryOp,
        ast.BoolOp,
        ast.Compare,
        ast.IfExp,
        ast.Call,
        ast.List,
        ast.Tuple,
        ast.Subscript,
        ast.Load,
        ast.operator,
        ast.unaryop,
        ast.boolop,
        ast.cmpop,
        ast.keyword,
        ast.Slice,
        ast.ListComp,
        ast.comprehension,
        ast.Store,
    )
    if isinstance(node, ast.comprehension) and (
        node.is_async or not isinstance(node.target, ast.Name)
    ):
        raise ExprError("CG303", "a comprehension binds one name: [f(x) for x in xs]")
    if isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
        raise ExprError("CG303", f"operator '{type(node.op).__name__}' is not allowed")
    if isinstance(node, ast.Compare) and any(type(op) not in _COMPARE for op in node.ops):
        raise ExprError("CG303", "'is' comparisons are not allowed", "use == or !=")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else "this call"
            raise ExprError(
                "CG303",
                f"'{what}' is not an allowed function",
                "allowed: " + ", ".join(sorted(FUNCTIONS)),
            )
        if any(k.arg is None for k in node.keywords):
            raise ExprError("CG303", "'**' arguments are not allowed")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise ExprError("CG303", "'*' arguments are not allowed")
    if isinstance(node, ast.Attribute):
        raise ExprError("CG303", "attribute access ('.') is not allowed in expressions")
    if isinstance(node, ast.Constant) and not isinstance(
        node.value, (int, float, str, bool, type(None))
    ):
        raise ExprError("CG303", f"constant {node.value!r} is not allowed")
    if not isinstance(node, allowed):
        raise ExprError(
            "CG303",
            f"'{type(node).__name__}' is not allowed in expressions",
            "expressions may use arithmetic, comparisons, and/or/not, "
            "x if c else y, lists, indexing and the whitelisted functions",
        )


def evaluate(text: str, env: Mapping[str, Any], resolve: Resolver | None = None) -> Any:
    """Evaluate expression `text` with names from `env`.

    A Pending value is handed to `resolve`; without one, NeedsShape is raised so the caller can
    defer the whole expression. Raises ExprError for the user's mistakes.
    """
    tree = compile_expression(text)
    if type(tree) is ast.Name:  # `$width`: most of a spec's expressions read one name
        spend(1)
        return _read_name(tree.id, env, resolve)
    results = _RESULTS.get()
    key = None if results is None or resolve is not None else _result_key(text, env)
    if key is None and results is not None and resolve is None and text in _COSTLY:
        key = _result_key(text, env, [_MAX_KEPT_ITEMS])
    if key is not None and key in results:  # type: ignore[operator]
        value, work = results[key]  # type: ignore[index]
        spend(work)  # the budget counts what the spec asks for, kept or not
        return _copied(value)
    total = _TOTAL_WORK.get()
    budget = _Budget(MAX_WORK if total is None else min(MAX_WORK, total[0]))
    budget.shared = total is not None and total[0] < MAX_WORK
    try:
        value = _program(text)(_Run(env, resolve, budget))
    finally:
        if total is not None:
            total[0] -= budget.spent
    if key is not None and _frozen(value, [_MAX_KEPT_ITEMS]) is not None:
        results[key] = (_copied(value), budget.spent)  # type: ignore[index]
    elif key is None and budget.spent >= _COSTLY_WORK and len(_COSTLY) < _MAX_COSTLY:
        _COSTLY.add(text)
    return value


def work_left() -> int | None:
    """What the compile's expressions may still spend (None outside a compile)."""
    total = _TOTAL_WORK.get()
    return None if total is None else total[0]


def spend(work: int) -> None:
    """Charge the compile's budget for work done once and reused (a kept result, a replayed
    block): the same error where evaluating again would have run out."""
    total = _TOTAL_WORK.get()
    if total is None or not work:
        return
    if work <= total[0]:  # within the budget, as nearly always
        total[0] -= work
        return
    budget = _Budget(total[0])
    budget.shared = True
    try:
        budget.spend(work)
    finally:
        total[0] -= min(work, max(total[0], 0))


_SCALARS = (bool, int, float, str, type(None))
_ABSENT = object()


_MAX_KEPT_ITEMS = 1_000  # lists larger than this (in all) are neither keys nor kept
_MAX_KEPT_DEPTH = 32  # nor lists nested deeper: comparing keys recurses once per level
# Texts whose evaluation cost this much work are keyed by the lists they read too (a sweep's
# param tables); reading `table[i][2]` costs less than a key holding the table.
_COSTLY_WORK = 64
_COSTLY: set[str] = set()
_MAX_COSTLY = 10_000


def _result_key(
    text: str, env: Mapping[str, Any], room: list[int] | None = None
) -> tuple[Any, ...] | None:
    """The text and the values it reads, when they are plain scalars (or, given `room`,
    plain data of at most that many items): a deep network evaluates the same few
    expressions with the same few values thousands of times."""
    values: list[Any] = [text]
    for name in _names(text)[0]:
        value = env.get(name, _ABSENT)
        if value is _ABSENT:
            frozen: Any = value
        elif isinstance(value, _SCALARS):
            # True, 1 and 1.0 are equal keys otherwise, and so are 0.0 and -0.0
            frozen = (type(value), repr(value) if isinstance(value, float) else value)
        elif room is None:
            return None
        else:
            frozen = _frozen(value, room)
        if frozen is None:
            return None
        values.append(frozen)
    return tuple(values)


def _frozen(value: Any, room: list[int], depth: int = 0) -> Any:
    """A hashable image of plain data that tells apart what equality does not (True, 1 and
    1.0; 0.0 and -0.0; a list and a tuple), or None; `room` bounds the items walked, since
    aliases can nest lists far larger than the file, and the depth is bounded too."""
    room[0] -= 1
    if room[0] < 0 or depth > _MAX_KEPT_DEPTH:
        return None
    if isinstance(value, _SCALARS):
        return (type(value), repr(value) if isinstance(value, float) else value)
    if type(value) in (list, tuple):
        items = []
        for item in value:
            frozen = _frozen(item, room, depth + 1)
            if frozen is None:
                return None
            items.append(frozen)
        return (type(value), tuple(items))
    return None


def _copied(value: Any) -> Any:
    """Plain data anew: a kept list is never shared with what the caller may change."""
    if type(value) is list:
        return [_copied(item) for item in value]
    if type(value) is tuple:
        return tuple(_copied(item) for item in value)
    return value


@contextlib.contextmanager
def work_budget(results: dict[tuple[Any, ...], tuple[Any, int]] | None = None) -> Iterator[None]:
    """Evaluations inside share MAX_TOTAL_WORK (one compile), and the results of scalar
    expressions (`results`, to keep them longer)."""
    token = _TOTAL_WORK.set([MAX_TOTAL_WORK])
    results_token = _RESULTS.set({} if results is None else results)
    try:
        yield
    finally:
        _TOTAL_WORK.reset(token)
        _RESULTS.reset(results_token)


def deferred(text: str, env: Mapping[str, Any]) -> Deferred:
    """An expression to evaluate once shapes are known, with the values it reads now: its
    scope gains names later (the block's next params), and the expression must see neither
    those nor a later param that shadows a model param. An unknown name is an error now."""
    names, free = _names(text)
    for name in free:
        if name not in env:
            _read_name(name, env, None)  # the evaluator's CG302
    return Deferred(text, {name: env[name] for name in names if name in env})


def free_names(text: str) -> tuple[str, ...]:
    """The names an expression needs from its scope, sorted."""
    return _names(text)[1]


@lru_cache(maxsize=4096)
def _names(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names an expression reads, and those of them its scope must define (not bound by
    a comprehension, not a constant), sorted: once per text, as a deep network repeats a few."""
    tree = compile_expression(text)
    nodes = list(ast.walk(tree))
    functions = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    names = {n.id for n in nodes if isinstance(n, ast.Name) and id(n) not in functions}
    bound = {
        n.target.id
        for n in nodes
        if isinstance(n, ast.comprehension) and isinstance(n.target, ast.Name)
    }
    return tuple(sorted(names)), tuple(sorted(names - bound - _CONSTANT_NAMES.keys()))


class _Budget:
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
            self.spend(2 * len(value))
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


def _read_name(name: str, env: Mapping[str, Any], resolve: Resolver | None) -> Any:
    value = env.get(name, _ABSENT)
    if value is _ABSENT:
        if name in _CONSTANT_NAMES:
            return _CONSTANT_NAMES[name]
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


class _Run:
    """What one evaluation reads: the names in scope, how to resolve a Pending value, and the
    budget its steps are charged to (shared with the scopes of its comprehensions)."""

    __slots__ = ("budget", "env", "resolve")

    def __init__(self, env: Mapping[str, Any], resolve: Resolver | None, budget: _Budget) -> None:
        self.env, self.resolve, self.budget = env, resolve, budget

    def within(self, scope: Mapping[str, Any]) -> _Run:
        return _Run(scope, self.resolve, self.budget)


_Code = Callable[[_Run], Any]


@lru_cache(maxsize=4096)
def _program(text: str) -> _Code:
    """The expression as nested closures, made once per text: walking the syntax tree again
    for every evaluation costs several times the arithmetic it does."""
    return _code(compile_expression(text))


def _code(node: ast.expr) -> _Code:
    """Code for one node. Every node spends one step before its operands; what a node makes
    (not what a name or a constant holds: that was bounded when it was made) is bounded."""
    return _MAKERS[type(node)](node)


def _constant(node: ast.Constant) -> _Code:
    value = node.value

    def run(r: _Run) -> Any:
        r.budget.spend(1)
        return value

    return run


def _name(node: ast.Name) -> _Code:
    name = node.id

    def run(r: _Run) -> Any:
        r.budget.spend(1)
        return _read_name(name, r.env, r.resolve)

    return run


def _binop(node: ast.BinOp) -> _Code:
    left, right = _code(node.left), _code(node.right)
    kind, func = type(node.op), _BINARY[type(node.op)]

    def run(r: _Run) -> Any:
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

    def run(r: _Run) -> Any:
        r.budget.spend(1)
        return r.budget.bounded(_apply(func, operand(r)))

    return run


def _boolop(node: ast.BoolOp) -> _Code:
    is_and, items = isinstance(node.op, ast.And), [_code(v) for v in node.values]

    def run(r: _Run) -> Any:
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
    rest = [(_COMPARE[type(op)], _code(c)) for op, c in pairs]

    def run(r: _Run) -> Any:
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

    def run(r: _Run) -> Any:
        r.budget.spend(1)
        return r.budget.bounded(body(r) if test(r) else orelse(r))

    return run


def _call(node: ast.Call) -> _Code:
    name = node.func.id if isinstance(node.func, ast.Name) else ""
    func = FUNCTIONS[name]  # _check_allowed admitted only whitelisted names
    args = [_code(a) for a in node.args]
    keywords = [(k.arg, _code(k.value)) for k in node.keywords if k.arg is not None]

    def run(r: _Run) -> Any:
        r.budget.spend(1)
        values = [a(r) for a in args]
        kwargs = {k: v(r) for k, v in keywords}
        return r.budget.bounded(_apply(func, *values, name=name, **kwargs))

    return run


def _list(node: ast.List | ast.Tuple) -> _Code:
    items = [_code(e) for e in node.elts]

    def run(r: _Run) -> Any:
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

    def run(r: _Run) -> Any:
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

        def run_slice(r: _Run) -> Any:
            r.budget.spend(1)
            values = container(r)
            bounds = [None if p is None else p(r) for p in parts]
            return r.budget.bounded(_apply(lambda c: c[slice(*bounds)], values))

        return run_slice
    index_of = _code(node.slice)

    def run(r: _Run) -> Any:
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
