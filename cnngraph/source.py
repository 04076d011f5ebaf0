"""Reading spec files: safe YAML/JSON parsing that remembers the line and column of every value."""

from __future__ import annotations

import json
import math
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from .errors import Diagnostic, Location, SpecError

KeyPath = tuple[str | int, ...]

# The largest spec in the library is 5 KB; reading 500 KB of YAML takes about a second.
MAX_FILE_BYTES = 500_000
# Aliases let a tiny file describe an exponentially large tree ("billion laughs"); the tree is
# only ever built within this budget of values.
MAX_VALUES = 200_000

_TAG = "tag:yaml.org,2002:"
MAX_INT_BITS = 256  # larger integers cannot mean a size or a count, and print slowly
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}


class _SpecLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML 1.1 with YAML 1.2 floats: `1e-5` is a number, as every user expects. Parsed by
    libyaml when it is installed."""


_SpecLoader.add_implicit_resolver(
    _TAG + "float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)
# `name: 2024-05-01` is a name, not a date.
_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _TAG + "timestamp"]
    for first, resolvers in _SpecLoader.yaml_implicit_resolvers.items()
}

# Real specs nest a few levels deep. libyaml's composer recurses in C and would crash the
# process some ten thousand levels down, so the depth is measured first, from the parser's
# events (the parser keeps its own stack).
MAX_NESTING = 100
# Longer integer literals are refused before they are converted: base-60 (`1:0:0:...`) and
# long literals take quadratic time to convert, and 256 bits need at most 256 digits.
_MAX_INT_CHARS = 300


# Each scalar tag's own constructor, called directly: SafeConstructor.construct_object would
# keep every node it ever saw (a leak of a few hundred objects per file read).
_SCALARS = {tag: SafeConstructor.yaml_constructors[tag] for tag in _SCALAR_TAGS}
_scalars = SafeConstructor()


def format_key(path: KeyPath) -> str:
    """A key path as users write it: `blocks.basic.layers[0].kernel_size`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class Document:
    """Parsed data plus a side table of source positions keyed by path."""

    file: str
    data: Any
    lines: list[str] = field(default_factory=list)
    value_marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: KeyPath, at_key: bool = False) -> Location:
        """The location of the value (or its key) at `path`, else of the nearest enclosing value."""
        marks = self.key_marks if at_key else self.value_marks
        probe = path
        while True:
            mark = marks.get(probe) or self.value_marks.get(probe)
            if mark is not None:
                return Location(self.file, mark[0], mark[1], format_key(path))
            if not probe:
                return Location(self.file, None, None, format_key(path))
            probe = probe[:-1]


def has(data: Any, part: str | int) -> bool:
    """Whether parsed data (a mapping or a list) holds `part`."""
    if isinstance(data, dict):
        return part in data
    return isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)


def lookup(data: Any, path: KeyPath) -> Any:
    """The value at `path` in parsed data, or None where there is none."""
    for part in path:
        if not has(data, part):
            return None
        data = data[part]
    return data


def read(source: str | Path | Mapping[str, Any], name: str | None = None) -> Document:
    """Load a spec from a path, from YAML/JSON text, or from an in-memory mapping."""
    if isinstance(source, Mapping):
        file = name or "<dict>"
        _check_values(source, file)
        return Document(file, dict(source))
    if isinstance(source, Path) or _looks_like_path(source):
        path = Path(source)
        file = name or str(source)
        try:
            text = read_text(path, file)
        except SpecError:
            raise
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise _fail(
                "CG100",
                f"cannot read spec: {reason}",
                Location(file),
                "check the path; specs are UTF-8 YAML or JSON files",
            ) from None
        return parse(text, file, as_json=path.suffix.lower() == ".json")
    return parse(source, name or "<string>")


def read_text(path: Path, file: str) -> str:
    """A regular file's text, at most MAX_FILE_BYTES of it: a device (`/dev/zero`) or a pipe
    would never end, or block; the size is checked by reading, as /proc files claim 0."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise _fail(
            "CG100",
            "cannot read spec: not a regular file",
            Location(file),
            "a spec is a YAML or JSON file; devices, pipes and directories are not read",
        )
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _fail(
            "CG105",
            f"file is over {MAX_FILE_BYTES:,} bytes, the limit for a spec",
            Location(file),
        )
    return data.decode("utf-8")


def _check_values(data: Any, file: str) -> None:
    """A mapping given in memory holds what a file could: finite numbers, integers of at most
    MAX_INT_BITS, and at most MAX_VALUES values (a file's reader checks these as it goes)."""
    todo, count = [data], 0
    while todo:
        value = todo.pop()
        count += 1
        if count > MAX_VALUES:
            raise _fail("CG105", f"spec holds more than {MAX_VALUES:,} values", Location(file))
        if isinstance(value, Mapping):
            todo.extend(value.values())
        elif isinstance(value, (list, tuple)):
            todo.extend(value)
        elif out_of_range(value):
            raise _fail(
                "CG202",
                f"a number that is not finite or is over {MAX_INT_BITS} bits",
                Location(file),
            )


def out_of_range(value: Any) -> bool:
    """A number no spec value can be: infinite or NaN (a built file could not spell it), or an
    integer over MAX_INT_BITS (no size or count, and slow to print)."""
    if type(value) is float:
        return not math.isfinite(value)
    return type(value) is int and value.bit_length() > MAX_INT_BITS


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and (
        text.endswith((".yaml", ".yml", ".json")) or (len(text) < 4096 and Path(text).exists())
    )


def parse(text: str, file: str, as_json: bool = False) -> Document:
    if len(text) > MAX_FILE_BYTES:
        raise _fail(
            "CG105",
            f"spec text is {len(text):,} characters; the limit is {MAX_FILE_BYTES:,}",
            Location(file),
        )
    text = text.removeprefix("\ufeff")  # a byte order mark, as some editors write
    lines = text.splitlines()
    if as_json or text.lstrip().startswith("{"):
        _check_json(text, file, lines, strict=as_json)
        # Raw tabs cannot occur inside valid JSON strings, so turning them into spaces keeps
        # columns and meaning while sparing the YAML reader its tab rules.
        text = text.replace("\t", " ")
    try:
        _check_nesting(text, file)
        root = yaml.compose(text, Loader=_SpecLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        problem = exc.problem or exc.context or "cannot parse"
        hint = "check the indentation and that every ':' has a space after it"
        if mark and "\t" in _line(lines, mark.line)[: mark.column + 1]:
            hint = "YAML indentation must use spaces, not tabs"
        elif mark and "${" in _line(lines, mark.line):
            hint = (
                'inside { } or [ ], quote expressions: out_channels: "${planes * 4}" '
                "(YAML reads a bare { as a nested mapping)"
            )
        raise _fail("CG101", f"YAML syntax error: {problem}", loc, hint) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        raise _fail(
            "CG101",
            f"character {exc.character!r} is not allowed in YAML",
            Location(file, line, column),
            "remove it: control characters other than tab and newline cannot appear in a spec",
        ) from None
    except yaml.YAMLError as exc:
        raise _fail("CG101", f"YAML syntax error: {exc}", Location(file)) from None
    except RecursionError:
        raise _fail("CG105", "spec is nested too deeply", Location(file)) from None
    doc = Document(file, None, lines)
    if root is None:  # empty, or comments only: what is missing is missing from line 1
        doc.value_marks[()] = (1, 1)
        return doc
    try:
        doc.data = _Builder(doc).build(root, ())
    except RecursionError:
        raise _fail("CG105", "spec is nested too deeply", Location(file)) from None
    return doc


def _check_nesting(text: str, file: str) -> None:
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_SpecLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise _too_deep(file, event.start_mark)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        # libyaml 0.2.5's scanner reads flow brackets ahead of the parser's events and stops
        # at its own limit (1,000 levels): the same mistake, found earlier
        if exc.problem != "exceeded maximum nesting depth":
            raise
        raise _too_deep(file, exc.problem_mark) from None


def _too_deep(file: str, mark: Any) -> SpecError:
    where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
    return _fail(
        "CG105",
        f"spec is nested more than {MAX_NESTING} levels deep",
        where,
        "specs are a few levels deep: use blocks for structure",
    )


def _line(lines: list[str], index: int) -> str:
    return lines[index] if 0 <= index < len(lines) else ""


def _check_json(text: str, file: str, lines: list[str], strict: bool) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        if strict:
            raise _fail(
                "CG102",
                f"JSON syntax error: {exc.msg}",
                Location(file, exc.lineno, exc.colno),
                "JSON needs double quotes and no trailing commas",
            ) from None
    except (RecursionError, ValueError):
        pass  # too deep or a too long number: the YAML reading reports it, with a location


def _fail(code: str, message: str, loc: Location, hint: str | None = None) -> SpecError:
    return SpecError([Diagnostic(code, message, loc, hint)])


class _Builder:
    """Turns composed YAML nodes into plain Python values, recording where each came from."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.count = 0
        self.open: set[int] = set()  # the collections being built: a node in it contains itself

    def loc(self, node: yaml.Node, path: KeyPath) -> Location:
        return Location(
            self.doc.file, node.start_mark.line + 1, node.start_mark.column + 1, format_key(path)
        )

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _fail(
                "CG105",
                f"spec expands to more than {MAX_VALUES:,} values",
                self.loc(node, path),
                "YAML aliases (*name) are expanded in full; use blocks for reuse",
            )
        self.doc.value_marks.setdefault(
            path, (node.start_mark.line + 1, node.start_mark.column + 1)
        )
        if isinstance(node, yaml.ScalarNode):
            if node.tag not in _SCALAR_TAGS:
                raise self._bad_tag(node, path)
            if node.tag == _TAG + "int" and len(node.value) > _MAX_INT_CHARS:
                raise self._too_large(node, path)
            try:
                value = _SCALARS[node.tag](_scalars, node)
            except (yaml.YAMLError, ValueError, OverflowError) as exc:
                raise _fail(
                    "CG101", f"cannot read value {node.value[:40]!r}: {exc}", self.loc(node, path)
                ) from None
            if type(value) is int and value.bit_length() > MAX_INT_BITS:
                raise self._too_large(node, path)
            if type(value) is float and not math.isfinite(value):
                raise _fail(
                    "CG202",
                    f"{node.value!r} is not a finite number",
                    self.loc(node, path),
                    "sizes, rates and factors are finite numbers",
                )
            return value
        self._not_open(node, path)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _TAG + "seq":
                    raise self._bad_tag(node, path)
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                if node.tag != _TAG + "map":
                    raise self._bad_tag(node, path)
                return self._mapping(node, path)
            raise self._bad_tag(node, path)  # pragma: no cover - yaml has three node kinds
        finally:
            self.open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merged.update(self._merge_source(value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                raise _fail("CG106", "mapping keys must be plain names", self.loc(key_node, path))
            key = key_node.value
            key_path = (*path, key)
            if key in out:
                first = self.doc.key_marks[key_path]
                raise _fail(
                    "CG103",
                    f"duplicate key '{key}' (first defined at line {first[0]})",
                    self.loc(key_node, key_path),
                    "each key may appear once in a mapping; rename or remove one",
                )
            self.doc.key_marks[key_path] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            out[key] = self.build(value_node, key_path)
        for key, value in merged.items():
            out.setdefault(key, value)
        return out

    def _not_open(self, node: yaml.Node, path: KeyPath) -> None:
        if id(node) in self.open:
            raise _fail(
                "CG101",
                "a YAML alias refers to the list or mapping that contains it",
                self.loc(node, path),
                "an anchor (&name) can be used (*name) only after its value ends",
            )

    def _merge_source(self, node: yaml.Node, path: KeyPath) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):  # earlier sources take precedence, as in YAML
            if not isinstance(source, yaml.MappingNode):
                raise _fail("CG101", "'<<' merges only mappings", self.loc(source, path))
            self._not_open(source, path)
            merged.update(self._mapping(source, path))
        return merged

    def _too_large(self, node: yaml.Node, path: KeyPath) -> SpecError:
        return _fail(
            "CG101",
            f"the number {node.value[:20]}... is too large ({len(node.value)} characters)",
            self.loc(node, path),
            f"numbers fit in {MAX_INT_BITS} bits; sizes and counts are far smaller",
        )

    def _bad_tag(self, node: yaml.Node, path: KeyPath) -> SpecError:
        tag = node.tag.replace(_TAG, "!!")
        return _fail(
            "CG104",
            f"YAML tag '{tag}' is not allowed",
            self.loc(node, path),
            "specs hold plain data only: strings, numbers, booleans, lists, mappings",
        )
