"""Design spaces for `cnngraph sweep`: grids of param values, and distributions to sample.

A distribution is a small expression (the same on the command line and in a sweep file):

    choice(1, 2, 4)         one of the values, uniformly
    int(1, 16)              an integer in [1, 16], uniformly; int(8, 64, 8): multiples of 8
    log_int(8, 1024, 8)     log-uniform in [8, 1024], rounded to a multiple of 8 (RegNet widths)
    uniform(0.1, 0.5)       a float, uniformly; log_uniform(1e-3, 1e-1)
    [d1, d2, [d3, 4]]       a list, each item drawn
    [d] * 4                 four independent draws of d
    sorted(...)             a drawn list in increasing order (AnyNetX's non-decreasing widths)
    3, 0.5, 'relu', true    a fixed value

Draws come from one seeded generator in a fixed order, so `--seed` gives the same variants
whatever the number of jobs.
"""

from __future__ import annotations

import ast
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_VALUES = 10_000  # values in one draw, nested lists counted in full
MAX_NUMBER = 2**63  # bounds past this are no layer size
MAX_VARIANTS = 10_000_000
_WORDS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class SpaceError(Exception):
    """A distribution or grid that cannot be used; `hint` says what to write."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


Draw = Callable[[random.Random], Any]

FORMS = "choice(a, b, ...), int(lo, hi[, step]), log_int(lo, hi[, step]), uniform(lo, hi), "
FORMS += "log_uniform(lo, hi), [d, ...], [d] * n, sorted(d), or a value"


def parse_distribution(text: str) -> Draw:
    """The draw function of a distribution written as above."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise SpaceError(f"cannot parse distribution '{text}': {exc.msg}", FORMS) from None
    except (RecursionError, MemoryError):
        raise SpaceError("distribution is nested too deeply", FORMS) from None
    draw, size = _draw(tree)
    if size > MAX_VALUES:
        raise SpaceError(
            f"a draw holds {size:,} values, over {MAX_VALUES:,}",
            "a param value is a table of a few rows",
        )
    return draw


def _draw(node: ast.expr) -> tuple[Draw, int]:
    """The draw function of a node, and how many values one draw holds (nested lists in
    full, so that `[[d] * 1000] * 1000` is refused before it is drawn)."""
    value = _constant(node)
    if value is not _NOT_CONSTANT:
        return (lambda rng: value), 1
    if isinstance(node, ast.List):
        parts = [_draw(item) for item in node.elts]
        items = [draw for draw, _ in parts]
        return (lambda rng: [draw(rng) for draw in items]), sum(n for _, n in parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        items_node, count_node = node.left, node.right
        if isinstance(count_node, ast.List):
            items_node, count_node = count_node, items_node
        count = _constant(count_node)
        if not isinstance(items_node, ast.List) or not _is_int(count) or not count >= 0:
            raise SpaceError("`*` repeats a list: [d] * 4", FORMS)
        parts = [_draw(item) for item in items_node.elts]
        items = [draw for draw, _ in parts]
        size = count * sum(n for _, n in parts)
        if size > MAX_VALUES:
            raise SpaceError(f"a draw holds {size:,} values, over {MAX_VALUES:,}")
        return (lambda rng: [draw(rng) for _ in range(count) for draw in items]), size
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name = node.func.id
        if name == "sorted":
            if len(node.args) != 1 or not isinstance(node.args[0], ast.List | ast.BinOp):
                raise SpaceError("sorted(...) takes a list: sorted([int(1, 16)] * 4)", FORMS)
            inner, size = _draw(node.args[0])

            def ordered(rng: random.Random) -> Any:
                try:
                    return sorted(inner(rng))
                except TypeError:
                    raise SpaceError(
                        "sorted(...) needs values that compare: numbers, or texts",
                        "sorted([log_int(8, 1024, 8)] * 4)",
                    ) from None

            return ordered, size
        args = [_constant(arg) for arg in node.args]
        if _NOT_CONSTANT in args:
            raise SpaceError(f"the arguments of {name}() are values, not distributions", FORMS)
        if name == "choice":
            if not args:
                raise SpaceError("choice() needs at least one value")
            return (lambda rng: args[rng.randrange(len(args))]), 1
        if name in _NUMERIC:
            return _NUMERIC[name](name, args), 1
        raise SpaceError(f"unknown distribution '{name}'", FORMS)
    raise SpaceError(f"cannot read '{ast.unparse(node)}' as a distribution", FORMS)


_NOT_CONSTANT = object()


def _constant(node: ast.expr) -> Any:
    """A literal value (number, text, true/false/null, or a list of them), else _NOT_CONSTANT."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | type(None)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _constant(node.operand)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name) and node.id in _WORDS:
        return _WORDS[node.id]
    return _NOT_CONSTANT


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) <= MAX_NUMBER and math.isfinite(value)  # (a huge int has no float)


def _bounds(name: str, args: list[Any], integer: bool, positive: bool) -> tuple[Any, Any, int]:
    usage = f"{name}(lo, hi, step)" if integer else f"{name}(lo, hi)"
    if len(args) not in ((2, 3) if integer else (2,)):
        raise SpaceError(f"{name}() takes lo and hi" + (" and a step" if integer else ""), usage)
    if not all(_is_number(a) and (_is_int(a) or not integer) for a in args):
        what = "integers" if integer else "numbers"
        raise SpaceError(f"{name}() takes {what}, got {', '.join(map(repr, args))}", usage)
    low, high, step = args[0], args[1], args[2] if len(args) == 3 else 1
    if low > high or step < 1 or (positive and low <= 0):
        need = "0 < lo <= hi" if positive else "lo <= hi"
        need += ", step >= 1" if integer else ""
        raise SpaceError(f"{name}({', '.join(map(repr, args))}): needs {need}", usage)
    if integer and (high // step) * step < low:
        raise SpaceError(f"{name}({', '.join(map(repr, args))}): no multiple of {step} in range")
    return low, high, step


def _uniform_int(name: str, args: list[Any]) -> Draw:
    low, high, step = _bounds(name, args, integer=True, positive=False)
    first = -(-low // step)  # the multiples of step within [low, high]
    return lambda rng: step * rng.randint(first, high // step)


def _log_int(name: str, args: list[Any]) -> Draw:
    low, high, step = _bounds(name, args, integer=True, positive=True)
    first, last = max(1, -(-low // step)), high // step

    def draw(rng: random.Random) -> int:
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
        return int(step * min(last, max(first, round(value / step))))

    return draw


def _uniform(name: str, args: list[Any]) -> Draw:
    low, high, _ = _bounds(name, args, integer=False, positive=False)

    def draw(rng: random.Random) -> float:
        share = rng.random()  # weighted, as high - low may overflow to inf
        return float(min(high, max(low, low * (1 - share) + high * share)))

    return draw


def _log_uniform(name: str, args: list[Any]) -> Draw:
    low, high, _ = _bounds(name, args, integer=False, positive=True)
    return lambda rng: math.exp(rng.uniform(math.log(low), math.log(high)))


_NUMERIC: dict[str, Callable[[str, list[Any]], Draw]] = {
    "int": _uniform_int,
    "log_int": _log_int,
    "uniform": _uniform,
    "log_uniform": _log_uniform,
}


@dataclass
class Space:
    """What to vary: every combination of the grid, and for each, `samples` draws of the
    distributions (or the grid alone)."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    distributions: dict[str, str] = field(default_factory=dict)
    samples: int | None = None
    seed: int = 0

    def check(self) -> None:
        """Raise SpaceError for a space that cannot be swept."""
        for key, values in self.grid.items():
            if not values:
                raise SpaceError(f"--grid {key}: no values", "--grid width_mult=0.5,0.75,1.0")
        both = sorted(self.grid.keys() & self.distributions.keys())
        if both:
            raise SpaceError(f"'{both[0]}' is both on the grid and sampled", "choose one")
        if self.distributions and self.samples is None:
            raise SpaceError("distributions need a number of samples", "add --sample N")
        if self.samples is not None and not 1 <= self.samples <= MAX_VARIANTS:
            raise SpaceError(f"--sample takes 1 to {MAX_VARIANTS:,} variants")
        if not self.grid and self.samples is None:
            raise SpaceError("nothing to vary", "give --grid KEY=V1,V2,... or --sample N")
        trial = random.Random(self.seed)
        for key, text in self.distributions.items():
            try:
                draw = parse_distribution(text)
                for _ in range(8):  # what only a draw shows (sorted() of mixed values)
                    draw(trial)
            except SpaceError as exc:
                raise SpaceError(f"--dist {key}: {exc.message}", exc.hint) from None
        if self.size() > MAX_VARIANTS:
            raise SpaceError(f"{self.size():,} variants, over {MAX_VARIANTS:,}")

    def size(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) * (self.samples or 1)

    def variants(self) -> Iterator[dict[str, Any]]:
        """Each variant's params, in a fixed order."""
        draws = {key: parse_distribution(text) for key, text in self.distributions.items()}
        rng = random.Random(self.seed)
        keys = list(self.grid)
        for values in itertools.product(*(self.grid[k] for k in keys)):
            point = dict(zip(keys, values, strict=True))
            for _ in range(self.samples or 1):
                yield {**point, **{key: draw(rng) for key, draw in draws.items()}}


def grid_values(text: str, parse: Callable[[str], Any]) -> list[Any]:
    """`0.5,0.75,1.0` or `[1, 2],[3, 4]`: the values of a grid axis, each read by `parse` (YAML
    as in --set) from the text between top-level commas."""
    values, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            part = text[start:i].strip()
            if not part:
                raise SpaceError(f"an empty value in '{text}'", "--grid k=1,2,3")
            values.append(parse(part))
            start = i + 1
    return values
