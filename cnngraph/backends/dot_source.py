"""DOT text written directly: a directed graph of nodes, edges and nested subgraphs.

The diagram needs a handful of statements only; writing them here imports nothing, where a
general DOT library's import and builder took about 12 ms of each `cnngraph render`. The text is
laid out as Graphviz's own tools write it: one statement a line, tab-indented per subgraph,
attributes sorted by name after any label.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

_ID = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*|-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)")
_KEYWORDS = frozenset({"node", "edge", "graph", "digraph", "subgraph", "strict"})
# A quote, and the backslashes before it: `\"` is already escaped, `"` and `\\"` are not.
_QUOTE = re.compile(r'(?P<slashes>(?:\\{2})*)\\?"')


def quote(text: str) -> str:
    """`text` as a DOT ID: an HTML-like label (`<...>`) and a plain name as they are,
    anything else in double quotes, its quotes escaped."""
    if text.startswith("<") and text.endswith(">"):
        return text
    if _ID.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    return '"' + _QUOTE.sub(r'\g<slashes>\\"', text) + '"'


def attributes(label: str | None, attrs: dict[str, str]) -> str:
    """`label=... name=value ...`: the label first, the rest sorted by name."""
    items = [f"label={quote(label)}"] if label is not None else []
    items += [f"{quote(k)}={quote(v)}" for k, v in sorted(attrs.items())]
    return " ".join(items)


class DotGraph:
    """A digraph's statements, written as they are added."""

    def __init__(self, name: str, defaults: dict[str, dict[str, str]] | None = None) -> None:
        self.lines = [f"digraph {quote(name)} {{\n"]
        for kind, attrs in (defaults or {}).items():  # graph, node and edge defaults
            self.lines.append(f"\t{kind} [{attributes(None, attrs)}]\n")
        self._indent = "\t"

    def node(self, name: str, label: str | None = None, **attrs: str) -> None:
        self._statement(quote(name), label, attrs)

    def edge(self, tail: str, head: str, label: str | None = None, **attrs: str) -> None:
        self._statement(f"{quote(tail)} -> {quote(head)}", label, attrs)

    def attr(self, **attrs: str) -> None:
        """Attributes of the (sub)graph being written."""
        self.lines.append(f"{self._indent}{attributes(None, attrs)}\n")

    @contextmanager
    def subgraph(self, name: str) -> Iterator[DotGraph]:
        """Statements added inside the `with` belong to subgraph `name`."""
        outer = self._indent
        self.lines.append(f"{outer}subgraph {quote(name)} {{\n")
        self._indent = outer + "\t"
        try:
            yield self
        finally:
            self._indent = outer
            self.lines.append(f"{outer}}}\n")

    @property
    def source(self) -> str:
        return "".join(self.lines) + "}\n"

    def _statement(self, head: str, label: str | None, attrs: dict[str, str]) -> None:
        listed = attributes(label, attrs)
        self.lines.append(
            f"{self._indent}{head} [{listed}]\n" if listed else f"{self._indent}{head}\n"
        )
