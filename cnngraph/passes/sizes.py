"""Which input sizes compile: the minimum height and width, and the divisibility they need.

Each candidate size is tried by running shape inference; the rules of every op are exact, so
the answer is too. Heights and widths are independent in every op, so each axis is scanned
with the other held at its nominal size.

Sizes up to LINEAR_SCAN are tried one by one. Past it (a huge input or kernel), the search
relies on the shape the valid sizes have, `n >= minimum` and at most a period apart, and takes
`period` tries per halving: a 90,000-pixel side costs about a thousand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..ops import Shape
from .infer import ShapeInference

MAX_PERIOD = 64
LINEAR_SCAN = 1024


@dataclass(frozen=True)
class AxisRule:
    """Valid sizes along one axis: n >= minimum with n % step in residues (all, if step is 1)."""

    axis: str
    minimum: int
    step: int
    residues: tuple[int, ...]
    checked_up_to: int

    def accepts(self, n: int) -> bool:
        return n >= self.minimum and n % self.step in self.residues

    def describe(self) -> str:
        if self.step == 1:
            return f"{self.axis} >= {self.minimum}"
        if len(self.residues) == 1 and self.residues[0] == 0:
            return f"{self.axis} >= {self.minimum}, a multiple of {self.step}"
        rest = ", ".join(str(r) for r in self.residues)
        return f"{self.axis} >= {self.minimum}, {self.axis} mod {self.step} in {{{rest}}}"

    def as_tuple(self) -> tuple[int, int, tuple[int, ...], int]:
        return self.minimum, self.step, self.residues, self.checked_up_to

    def to_dict(self) -> dict[str, object]:
        return {
            "min": self.minimum,
            "step": self.step,
            "residues": list(self.residues),
            "checked_up_to": self.checked_up_to,
        }


def input_size_rules(inference: ShapeInference, shape: Shape) -> tuple[AxisRule, AxisRule] | None:
    """Rules for H and W, or None for inputs without spatial dims or when no size compiles."""
    if len(shape) != 3:
        return None
    pivot = shape if inference.compiles(shape) else _square_that_compiles(inference, shape)
    if pivot is None:
        return None
    rules: list[AxisRule] = []
    for axis, name in ((1, "H"), (2, "W")):
        if axis == 2 and pivot[1] == pivot[2] and inference.symmetric():
            rules.append(AxisRule("W", *rules[0].as_tuple()))
            break

        def compiles(n: int, axis: int = axis) -> bool:
            candidate = (*pivot[:axis], n, *pivot[axis + 1 :])
            return inference.compiles(candidate)

        rule = _scan(name, pivot[axis], _period(inference, pivot, axis), compiles)
        if rule is None:
            return None
        rules.append(rule)
    return rules[0], rules[1]


def _square_that_compiles(inference: ShapeInference, shape: Shape) -> Shape | None:
    """With one axis held fixed, only sizes valid for that axis can be scanned along the other:
    when the given size fails, start from the smallest square input that works."""
    n = _first_valid(
        lambda n: inference.compiles((shape[0], n, n)),
        max(2 * max(shape[1:]), 512),
        MAX_PERIOD,
    )
    return None if n is None else (shape[0], n, n)


def _period(inference: ShapeInference, shape: Shape, axis: int) -> int:
    """A bound on the period of the valid sizes: the largest downsampling of any node whose
    size follows the input. Every op's size rule shifts by a whole number when its input shifts
    by a multiple of its stride, so the pattern of valid sizes repeats with that period."""
    n = shape[axis]
    doubled = (*shape[:axis], 2 * n, *shape[axis + 1 :])
    if not (inference.compiles(shape) and inference.compiles(doubled)):
        return MAX_PERIOD
    growth = inference.least_growth(shape, doubled, axis)
    ratio = 1.0 if growth is None else max(1.0, n / growth)
    return min(1 << math.ceil(math.log2(ratio)), MAX_PERIOD)


def _scan(name: str, nominal: int, period: int, test: Callable[[int], bool]) -> AxisRule | None:
    # Past the nominal size too: when the nominal size fails, the smallest that works is news.
    # Up to the nominal size when it compiles: far larger ones may hold too many values.
    minimum = _first_valid(test, nominal if test(nominal) else max(2 * nominal, 512), period)
    if minimum is None:
        return None
    valid = [test(n) for n in range(minimum, minimum + period)]
    # The pattern repeats every `period`; it may repeat more often (e.g. every size works).
    step = next(
        p
        for p in range(1, period + 1)
        if period % p == 0 and all(valid[i] == valid[i % p] for i in range(period))
    )
    residues = tuple(sorted((minimum + i) % step for i in range(step) if valid[i]))
    return AxisRule(name, minimum, step, residues, minimum + period - 1)


def _first_valid(test: Callable[[int], bool], end: int, period: int) -> int | None:
    """The smallest n in 1..end that passes `test`, or None."""
    found = next((n for n in range(1, min(end, LINEAR_SCAN) + 1) if test(n)), None)
    if found is not None or end <= LINEAR_SCAN:
        return found

    def window(x: int) -> int | None:
        """The first valid size in [x, x + period)."""
        return next((n for n in range(x, min(x + period, end + 1)) if test(n)), None)

    # Past the minimum, valid sizes are at most `period` apart (a pattern that repeats with
    # the downsampling), so a window holds one exactly from `minimum - period + 1` on: binary
    # search for the first window that does.
    low, high = LINEAR_SCAN + 1, max(LINEAR_SCAN + 1, end - period + 1)
    if window(high) is None:
        return None  # nothing compiles, or only below the top window: not at these sizes
    while low < high:
        middle = (low + high) // 2
        if window(middle) is not None:
            high = middle
        else:
            low = middle + 1
    return window(low)


def describe(rules: tuple[AxisRule, AxisRule] | None) -> str:
    """`H, W >= 15`, or one clause per axis when they differ."""
    if rules is None:
        return "fixed (no spatial dims)"
    h, w = rules
    if h.as_tuple() == w.as_tuple():
        return h.describe().replace("H", "H, W", 1)
    return f"{h.describe()}; {w.describe()}"
