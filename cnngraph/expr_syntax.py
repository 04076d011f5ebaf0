"""The expression language: what `$name` and `${...}` may say (a whitelisted subset of Python
syntax, parsed and checked once per text), the values they compute with, and their limits.

`$width` is a reference; `${width * 4}` an expression. Nothing here calls eval, reads
attributes, or calls a function outside FUNCTIONS.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import struct
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

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

BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
CONSTANT_NAMES = {
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
    slices = {id(n.slice) for n in ast.walk(tree) if isinstance(n, ast.Subscript)}
    for node in ast.walk(tree):
        _check_allowed(node)
        if isinstance(node, ast.Slice) and id(node) not in slices:
            raise ExprError(
                "CG303", "a slice stands alone in its brackets", "write xs[1:3], not xs[0, 1:3]"
            )
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
    if isinstance(node, ast.BinOp) and type(node.op) not in BINARY:
        raise ExprError("CG303", f"operator '{type(node.op).__name__}' is not allowed")
    if isinstance(node, ast.Compare) and any(type(op) not in COMPARE for op in node.ops):
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
