"""An indenting line writer and a namespace that hands out unique Python names."""

from __future__ import annotations

import ast
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
    {
        "self",
        "torch",
        "nn",
        "math",
        "struct",
        "make_divisible",
        "float32",
        "super",
        "Any",
        "Callable",
        "Sequence",
    }
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
    """Lines past 99 columns: a statement's calls, lists and comprehensions broken over lines
    (ruff's style, roughly); a call's arguments one per line."""
    if len(line) <= 99:
        return line
    indent = line[: len(line) - len(line.lstrip())]
    body = line.strip()
    statement = _statement(body)
    if statement is not None:
        return "\n".join(_statement_lines(statement, indent))
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


Statement = ast.Assign | ast.AnnAssign | ast.Return | ast.Expr


def _statement(body: str) -> Statement | None:
    """`body` as one assignment, return or expression statement, or None (a fragment of a
    longer statement, or a line with a comment, which parsing would drop)."""
    if "#" in body or body.endswith(","):
        return None
    try:
        tree = ast.parse(body)
    except SyntaxError:
        return None
    statement = tree.body[0] if len(tree.body) == 1 else None
    kinds = (ast.Assign, ast.AnnAssign, ast.Return, ast.Expr)
    return statement if isinstance(statement, kinds) else None


def _statement_lines(statement: Statement, indent: str) -> list[str]:
    if isinstance(statement, ast.Assign):
        prefix = " = ".join(ast.unparse(t) for t in statement.targets) + " = "
    elif isinstance(statement, ast.AnnAssign):
        target, annotation = ast.unparse(statement.target), ast.unparse(statement.annotation)
        prefix = f"{target}: {annotation} = "
    else:
        prefix = "return " if isinstance(statement, ast.Return) else ""
    value = statement.value
    if value is None:
        return [f"{indent}{ast.unparse(statement)}"]
    lines = _expression_lines(value, indent, len(prefix), bracketed=False)
    return [f"{indent}{prefix}{lines[0].lstrip()}", *lines[1:]]


_ATOMS = (
    ast.Name,
    ast.Constant,
    ast.Call,
    ast.Subscript,
    ast.Attribute,
    ast.List,
    ast.ListComp,
    ast.SetComp,
)


def _expression_lines(
    node: ast.expr, indent: str, taken: int = 0, bracketed: bool = True
) -> list[str]:
    """`node` at `indent`, over several lines where one would pass 99 columns (`taken`: the
    columns the line's start already uses; `bracketed`: inside brackets already, where an
    operator may start a line)."""
    text = ast.unparse(node)
    if len(indent) + taken + len(text) <= 99:
        return [indent + text]
    inner = indent + "    "
    if isinstance(node, ast.Call):
        lines = [f"{indent}{ast.unparse(node.func)}("]
        for arg in node.args:
            lines += _with_comma(_expression_lines(arg, inner))
        for keyword in node.keywords:
            name = f"{keyword.arg}=" if keyword.arg else "**"
            value = _expression_lines(keyword.value, inner, len(name))
            lines += _with_comma([f"{inner}{name}{value[0].lstrip()}", *value[1:]])
        return [*lines, f"{indent})"]
    if isinstance(node, (ast.ListComp, ast.SetComp)):
        opening, closing = ("[", "]") if isinstance(node, ast.ListComp) else ("{", "}")
        if len(inner) + len(text) - 2 <= 99:  # the inside on a line of its own, as ruff does
            return [f"{indent}{opening}", f"{inner}{text[1:-1]}", f"{indent}{closing}"]
        lines = [f"{indent}{opening}", *_expression_lines(node.elt, inner)]
        for loop in node.generators:
            lines.append(f"{inner}for {ast.unparse(loop.target)} in {ast.unparse(loop.iter)}")
            lines += [f"{inner}if {ast.unparse(condition)}" for condition in loop.ifs]
        return [*lines, f"{indent}{closing}"]
    if isinstance(node, (ast.List, ast.Tuple)):
        opening, closing = ("[", "]") if isinstance(node, ast.List) else ("(", ")")
        lines = [f"{indent}{opening}"]
        for item in node.elts:
            lines += _with_comma(_expression_lines(item, inner))
        return [*lines, f"{indent}{closing}"]
    if isinstance(node, (ast.BinOp, ast.IfExp)) and not bracketed:
        return [f"{indent}(", *_expression_lines(node, inner), f"{indent})"]
    if isinstance(node, ast.IfExp):
        body = _expression_lines(node.body, indent)
        orelse = _expression_lines(node.orelse, indent, len("else "))
        orelse[0] = f"{indent}else {orelse[0].lstrip()}"
        return [*body, f"{indent}if {ast.unparse(node.test)}", *orelse]
    if isinstance(node, ast.BinOp):
        operator = ast.unparse(ast.BinOp(ast.Name("a"), node.op, ast.Name("b")))[2:-2]
        left, right = (
            _expression_lines(side if isinstance(side, _ATOMS) else _parenthesized(side), indent)
            for side in (node.left, node.right)
        )
        right[0] = f"{indent}{operator} {right[0].lstrip()}"
        return [*left, *right]
    return [indent + text]


def _parenthesized(node: ast.expr) -> ast.expr:
    """An operand that keeps its own grouping once it stands on lines of its own."""
    return ast.Call(ast.Name(""), [node], [])  # unparses as `(...)`


def _with_comma(lines: list[str]) -> list[str]:
    return [*lines[:-1], lines[-1] + ","]


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
