"""Spec values as Python source: the spec's expressions already are a Python subset, so they are
rewritten, not interpreted: names become the generated code's variables, `true` becomes True,
`ceil` becomes `math.ceil`, and `make_divisible` and `float32` call the file's own helpers."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from ... import symbolic as sym
from ...expr import FUNCTIONS, ExprError, source_of
from ...symbolic import Expr


class Unsupported(Exception):
    """The definition generator cannot translate this part of a spec (yet)."""


_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False}
_MATH = {"ceil", "floor", "log", "sqrt"}
_HELPERS = {"make_divisible", "float32"}  # functions the generated file defines


class _Rewrite(ast.NodeTransformer):
    def __init__(self, env: Mapping[str, Expr], needs: set[str]) -> None:
        self.env = env
        self.needs = needs
        self.bound: set[str] = set()  # comprehension variables

    def visit_ListComp(self, node: ast.ListComp) -> ast.AST:
        for gen in node.generators:
            self.bound |= {n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
            name = node.func.id
            node.args = [self.visit(a) for a in node.args]
            if name in _MATH:
                self.needs.add("math")
                node.func = ast.Attribute(ast.Name("math", ast.Load()), name, ast.Load())
            elif name in _HELPERS:
                self.needs.add(name)
            return node
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.bound:
            return node
        if node.id in _CONSTANTS:
            return ast.Constant(_CONSTANTS[node.id])
        if node.id not in self.env:
            raise Unsupported(f"the name '{node.id}' in an expression")
        return ast.parse(self.env[node.id].text, mode="eval").body


def translate(text: str, env: Mapping[str, Expr], needs: set[str]) -> Expr:
    """A spec expression (without `${}`) as code over the generated names in `env`."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise Unsupported(f"expression '{text}'") from exc
    body = _Rewrite(env, needs).visit(tree.body)
    return sym.code(ast.unparse(body))


def value(raw: Any, env: Mapping[str, Expr], needs: set[str]) -> Expr:
    """A spec value (a literal, `$name`, `${...}`, or a list of them) as code."""
    if isinstance(raw, list):
        items = [value(item, env, needs) for item in raw]
        if all(i.constant for i in items):
            return sym.const(tuple(i.value for i in items))
        inner = ", ".join(i.text for i in items)
        return sym.code(f"({inner},)" if len(items) == 1 else f"({inner})")
    if isinstance(raw, str) and raw.startswith("$$"):
        return sym.const(raw[1:])
    try:
        text = source_of(raw)
    except ExprError as exc:
        raise Unsupported(exc.message) from exc
    if text is None:
        return sym.const(raw)
    return translate(text, env, needs)


def names_in(raw: Any) -> set[str]:
    """Every name a spec value's expressions read (for finding the model params a block uses)."""
    if isinstance(raw, list):
        return set().union(*(names_in(item) for item in raw)) if raw else set()
    if isinstance(raw, dict):
        return set().union(*(names_in(item) for item in raw.values())) if raw else set()
    if not isinstance(raw, str) or "$" not in raw:
        return set()
    text = raw[raw.index("$") :]
    try:
        inner = source_of(text)
    except ExprError:
        return set()
    if inner is None:
        return set()
    try:
        tree = ast.parse(inner.strip(), mode="eval")
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
