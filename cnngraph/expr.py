"""Evaluating expressions over params: the results a compile keeps, and the budget of work
that all of a compile's expressions share.

The language itself (what an expression may say, its values and limits) is expr_syntax.py;
how one expression runs is expr_run.py. Both are read through this module.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from .expr_run import Budget, Run, program, read_name
from .expr_syntax import (
    CONSTANT_NAMES,
    FUNCTIONS,
    INVALID,
    MAX_EXPRESSION_CHARS,
    MAX_EXPRESSION_DEPTH,
    MAX_INT,
    MAX_LIST,
    MAX_TOTAL_WORK,
    MAX_WORK,
    Deferred,
    ExprError,
    NeedsShape,
    Pending,
    ReadsInvalid,
    Resolver,
    ShapeSymbol,
    compile_expression,
    contains_invalid,
    contains_pending,
    float32,
    list_items,
    make_divisible,
    source_of,
)

__all__ = [
    "FUNCTIONS",
    "INVALID",
    "MAX_EXPRESSION_CHARS",
    "MAX_EXPRESSION_DEPTH",
    "MAX_INT",
    "MAX_LIST",
    "MAX_TOTAL_WORK",
    "MAX_WORK",
    "Deferred",
    "ExprError",
    "NeedsShape",
    "Pending",
    "ReadsInvalid",
    "Resolver",
    "ShapeSymbol",
    "compile_expression",
    "contains_invalid",
    "contains_pending",
    "deferred",
    "evaluate",
    "float32",
    "free_names",
    "list_items",
    "make_divisible",
    "source_of",
    "spend",
    "work_budget",
    "work_left",
]

_TOTAL_WORK: ContextVar[list[int] | None] = ContextVar("cnngraph_total_work", default=None)
_RESULTS: ContextVar[dict[tuple[Any, ...], tuple[Any, int]] | None] = ContextVar(
    "cnngraph_results", default=None
)


def evaluate(text: str, env: Mapping[str, Any], resolve: Resolver | None = None) -> Any:
    """Evaluate expression `text` with names from `env`.

    A Pending value is handed to `resolve`; without one, NeedsShape is raised so the caller can
    defer the whole expression. Raises ExprError for the user's mistakes.
    """
    tree = compile_expression(text)
    total = _TOTAL_WORK.get()
    if type(tree) is ast.Name and (total is None or total[0] > 0):
        # `$width`, most of a spec's expressions: no key, no budget object; its one step is
        # charged after the read, as below (a Deferred it holds is evaluated first)
        try:
            return read_name(tree.id, env, resolve)
        finally:
            if total is not None:
                total[0] -= 1
    results = _RESULTS.get()
    key = None if results is None or resolve is not None else _result_key(text, env)
    if key is None and results is not None and resolve is None and text in _COSTLY:
        key = _result_key(text, env, [_MAX_KEPT_ITEMS])
    if key is not None and key in results:  # type: ignore[operator]
        value, work = results[key]  # type: ignore[index]
        spend(work)  # the budget counts what the spec asks for, kept or not
        return _copied(value)
    budget = Budget(MAX_WORK if total is None else min(MAX_WORK, total[0]))
    budget.shared = total is not None and total[0] < MAX_WORK
    try:
        value = program(text)(Run(env, resolve, budget))
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
    budget = Budget(total[0])
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
            read_name(name, env, None)  # the evaluator's CG302
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
    return tuple(sorted(names)), tuple(sorted(names - bound - CONSTANT_NAMES.keys()))
