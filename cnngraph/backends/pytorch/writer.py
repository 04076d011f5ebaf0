"""An indenting line writer and a namespace that hands out unique Python names."""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

# Names the generated file defines or imports itself; spec names never take them.
RESERVED = frozenset(
    {"self", "torch", "nn", "math", "make_divisible", "super", "Any", "Callable", "Sequence"}
)


class Writer:
    """Lines of code at a current indentation (four spaces a level)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str) -> None:
        for part in text.split("\n"):
            self.lines.append("    " * self.depth + part if part else "")

    def extend(self, other: Writer) -> None:
        for text in other.lines:
            self.lines.append("    " * self.depth + text if text else "")

    @contextmanager
    def indent(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


def python_name(name: str) -> str:
    """A spec name as a Python identifier that shadows nothing the file needs."""
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit():
        text = f"_{text}"
    if keyword.iskeyword(text) or text in RESERVED or hasattr(builtins, text):
        text += "_"
    return text


class Names:
    """The names in use in one Python scope; `fresh` gives a new one near the wanted one."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self.taken = set(taken) | RESERVED

    def fresh(self, wanted: str) -> str:
        base = python_name(wanted)
        name, n = base, 2
        while name in self.taken:
            name, n = f"{base}_{n}", n + 1
        self.taken.add(name)
        return name
