"""An indenting line writer and a namespace that hands out unique Python names."""

from __future__ import annotations

import builtins
import io
import keyword
import re
import tokenize
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from ...ops.base import literal
from ...symbolic import Expr

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


def literal_text(value: Expr) -> str:
    if value.constant:
        return literal(value.value) if isinstance(value.value, tuple) else repr(value.value)
    return value.text


def default_text(head: str, default: Expr) -> str:
    """`name: hint = default`; a long table gets a row per line."""
    text = f"{head} = {default.text}"
    value = default.value
    if len(text) <= 80 or not isinstance(value, tuple):
        return text
    rows = "\n".join(f"    {literal(v) if not isinstance(v, tuple) else repr(v)}," for v in value)
    return f"{head} = (\n{rows}\n)"


def wrap_long(line: str) -> str:
    """Lines past 99 columns: a call's arguments one per line (ruff's style, roughly)."""
    if len(line) <= 99:
        return line
    indent = line[: len(line) - len(line.lstrip())]
    body = line.strip()
    comma = body.endswith(",")
    body = body.rstrip(",")
    start = body.find("(")
    if (
        start < 0
        or not body.endswith(")")
        or not (body[start - 1 : start].isalnum() or body[start - 1 : start] in "_]")
    ):
        return line
    lines = [f"{indent}{body[: start + 1]}"]
    lines += [wrap_long(f"{indent}    {arg},") for arg in split_arguments(body[start + 1 : -1])]
    lines.append(f"{indent}){',' if comma else ''}")
    return "\n".join(lines)


def double_quoted(source: str) -> str:
    """Single-quoted string literals (Python's repr) in double quotes, as the rest of the file
    and ruff's style write them; a literal holding a quote or a backslash stays as it is."""
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, int, str]] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.STRING or token.start[0] != token.end[0]:
            continue
        text = token.string
        prefix = text[: len(text) - len(text.lstrip("rbfuRBFU"))]
        body = text[len(prefix) :]
        if body[:1] != "'" or body.startswith("'''") or '"' in body or "\\" in body:
            continue
        edits.append((token.start[0] - 1, token.start[1], token.end[1], f'{prefix}"{body[1:-1]}"'))
    for row, start, end, text in reversed(edits):
        lines[row] = lines[row][:start] + text + lines[row][end:]
    return "".join(lines)


def split_arguments(inner: str) -> list[str]:
    """A call's argument list split at its top-level commas (not inside brackets or quotes)."""
    depth, current, args = 0, "", []
    quote: str | None = None
    for ch in inner:
        if quote:
            current += ch
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        if ch == "," and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        depth += ch in "([{"
        depth -= ch in ")]}"
        current += ch
    if current.strip():
        args.append(current.strip())
    return args
