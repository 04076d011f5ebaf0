"""Symbolic values for code generation: Python source text that folds to a constant when it can.

Op classes state their rules (how they map channels and sizes, whether they keep the height
and width) once, over `Expr` values; the PyTorch generator reads them to write `__init__` code.
A rule applied to constants gives a constant, so generated code keeps literals where the spec
wrote literals and expressions where it wrote expressions.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

_UNKNOWN = object()


@dataclass(frozen=True)
class Expr:
    """A Python expression: its source text, and its value when it is a constant."""

    text: str
    value: Any = _UNKNOWN

    @property
    def constant(self) -> bool:
        return self.value is not _UNKNOWN

    def __str__(self) -> str:
        return self.text


def const(value: Any) -> Expr:
    """A constant; lists are written as tuples (generated arguments are immutable)."""
    value = _as_tuple(value)
    return Expr(repr(value), value)


def code(text: str, simplify: bool = False) -> Expr:
    """Source text with every part that reads no names folded (`(3 - 1) // 2` is 1, `True
    and x` is x); a constant when nothing is left to read."""
    tree = _Fold(simplify).visit(ast.parse(text, mode="eval"))
    tidy = ast.unparse(tree)
    if isinstance(tree.body, ast.Constant):
        return const(tree.body.value)
    return Expr(tidy)


def _reads_names(node: ast.AST) -> bool:
    return any(isinstance(n, (ast.Name, ast.Attribute, ast.Call)) for n in ast.walk(node))


class _Fold(ast.NodeTransformer):
    """Constant folding with the spec's own safe evaluator (never `eval`); with `simplify`,
    integer arithmetic on sizes is tidied too (see `_simplify`)."""

    def __init__(self, simplify: bool = False) -> None:
        self.simplify = simplify

    def visit(self, node: ast.AST) -> Any:
        node = self.generic_visit(node)
        if isinstance(node, ast.BoolOp):
            return self._bool(node)
        if isinstance(node, ast.IfExp) and isinstance(node.test, ast.Constant):
            return node.body if node.test.value else node.orelse
        if self.simplify and isinstance(node, ast.BinOp) and _reads_names(node):
            return _simplify(node)
        if not isinstance(node, ast.expr) or isinstance(node, ast.Constant) or _reads_names(node):
            return node
        from .expr import ExprError, evaluate

        try:
            value = evaluate(ast.unparse(node), {})
        except (ExprError, ArithmeticError, TypeError, ValueError, RecursionError):
            return node
        if isinstance(value, list):
            value = tuple(value)
        return ast.Constant(value)

    @staticmethod
    def _bool(node: ast.BoolOp) -> ast.expr:
        is_and = isinstance(node.op, ast.And)
        kept = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                if bool(value.value) != is_and:  # False in an `and`, True in an `or`
                    return ast.Constant(not is_and)
                continue
            kept.append(value)
        if not kept:
            return ast.Constant(is_and)
        return kept[0] if len(kept) == 1 else ast.BoolOp(node.op, kept)


def _number(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    )


def _value(node: ast.expr) -> int:
    assert isinstance(node, ast.Constant) and isinstance(node.value, int)
    return node.value


def _simplify(node: ast.BinOp) -> ast.expr:
    """`x // 1` and `x * 1` are x; a sum's numbers are added up (`n + 2 - 3` is `n - 1`,
    `n - 1 + 1` is n), so that sizes through a conv read as a person writes them. Only for
    the op rules' integer arithmetic: `x // 1` floors a float."""
    one = [side for side in (node.left, node.right) if _number(side) and _value(side) == 1]
    if isinstance(node.op, (ast.FloorDiv, ast.Mult)) and one and one[-1] is node.right:
        return node.left
    if isinstance(node.op, ast.Mult) and one and one[0] is node.left:
        return node.right
    if not isinstance(node.op, (ast.Add, ast.Sub)):
        return node
    terms = _terms(node)
    numbers = [(sign, t) for sign, t in terms if _number(t)]
    others = [(sign, t) for sign, t in terms if not _number(t)]
    total = sum(sign * _value(t) for sign, t in numbers)
    if (len(numbers) < 2 and total != 0) or not others:
        return node
    sign, first = others[0]
    out: ast.expr = first if sign > 0 else ast.UnaryOp(ast.USub(), first)
    for sign, term in others[1:]:
        out = ast.BinOp(out, ast.Add() if sign > 0 else ast.Sub(), term)
    if total != 0:
        out = ast.BinOp(out, ast.Add() if total > 0 else ast.Sub(), ast.Constant(abs(total)))
    return out


def _terms(node: ast.expr) -> list[tuple[int, ast.expr]]:
    """A sum as (sign, term) pairs."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        right = _terms(node.right)
        if isinstance(node.op, ast.Sub):
            right = [(-sign, term) for sign, term in right]
        return _terms(node.left) + right
    return [(1, node)]


def _as_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value


def _binary(
    op: Callable[[Any, Any], Any], symbol: str, identity: Any = None
) -> Callable[[Expr, Expr], Expr]:
    """`a symbol b` as code, constants folded; with an `identity` (0 for +, 1 for *) an operand
    equal to it leaves the other."""

    def apply(a: Expr, b: Expr) -> Expr:
        if identity is not None and a.constant and a.value == identity:
            return b
        if identity is not None and b.constant and b.value == identity:
            return a
        if a.constant and b.constant:
            return const(op(a.value, b.value))
        return code(f"({a.text}) {symbol} ({b.text})", simplify=True)

    return apply


add = _binary(operator.add, "+", 0)
sub = _binary(operator.sub, "-")
floordiv = _binary(operator.floordiv, "//")
eq = _binary(operator.eq, "==")
ne = _binary(operator.ne, "!=")

mul = _binary(operator.mul, "*", 1)


def all_of(items: Iterable[Expr]) -> Expr:
    """`a and b and ...`, constants folded."""
    rest: list[Expr] = []
    for item in items:
        if item.constant and not item.value:
            return const(False)
        if not item.constant and all(item.text != r.text for r in rest):
            rest.append(item)
    if not rest:
        return const(True)
    return code(" and ".join(f"({e.text})" for e in rest))


def any_of(items: Iterable[Expr]) -> Expr:
    rest: list[Expr] = []
    for item in items:
        if item.constant and item.value:
            return const(True)
        if not item.constant and all(item.text != r.text for r in rest):
            rest.append(item)
    if not rest:
        return const(False)
    return code(" or ".join(f"({e.text})" for e in rest))


def not_(a: Expr) -> Expr:
    if a.constant:
        return const(not a.value)
    tree = ast.parse(a.text, mode="eval").body
    if isinstance(tree, ast.Compare) and len(tree.ops) == 1 and isinstance(tree.ops[0], ast.Eq):
        return code(ast.unparse(ast.Compare(tree.left, [ast.NotEq()], tree.comparators)))
    return code(f"not ({a.text})")


def choose(cond: Expr, then: Expr, otherwise: Expr) -> Expr:
    """`then if cond else otherwise`, folded when the condition is known or both agree."""
    if cond.constant:
        return then if cond.value else otherwise
    if then.text == otherwise.text:
        return then
    return code(f"({then.text}) if ({cond.text}) else ({otherwise.text})")


def axis(value: Expr, index: int) -> Expr:
    """One spatial axis of a field that may be a pair: a literal pair gives its element; a
    symbolic value is taken as the same number on both axes."""
    if value.constant and isinstance(value.value, tuple):
        return const(value.value[index])
    return value
