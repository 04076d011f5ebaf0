"""Diagnostics: each user mistake becomes a Diagnostic with a stable code, location and hint."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

Severity = Literal["error", "warning"]

# The catalogue of stable codes. A code never changes meaning once released; docs/diagnostics.md
# lists them with examples. 0xx: the run itself, 1xx: reading the file, 2xx: schema, 3xx:
# expansion and expressions, 4xx: graph structure, 5xx: shapes.
CODES: dict[str, str] = {
    "CG001": "too many errors",
    "CG100": "file cannot be read",
    "CG101": "YAML syntax error",
    "CG102": "JSON syntax error",
    "CG103": "duplicate key",
    "CG104": "YAML tag not allowed",
    "CG105": "document too large",
    "CG106": "mapping key is not a string",
    "CG201": "unknown field",
    "CG202": "invalid value",
    "CG203": "missing field",
    "CG204": "unknown op",
    "CG205": "unknown block",
    "CG206": "unsupported format version",
    "CG207": "malformed layer entry",
    "CG301": "expression syntax error",
    "CG302": "unknown name in expression",
    "CG303": "construct not allowed in expressions",
    "CG304": "expression failed",
    "CG305": "bad repeat count",
    "CG306": "per-repeat list has the wrong length",
    "CG307": "unknown or invalid parameter",
    "CG308": "missing block parameter",
    "CG309": "block uses itself",
    "CG310": "value depends on tensor shapes where it may not",
    "CG311": "model too large",
    "CG312": "condition is not a boolean",
    "CG313": "cannot spread into the list",
    "CG401": "unknown reference",
    "CG402": "duplicate name",
    "CG403": "cycle",
    "CG404": "unused layer",
    "CG405": "unknown output",
    "CG406": "layer does not depend on the input",
    "CG407": "unused block definition",
    "CG408": "wrong number of inputs",
    "CG501": "size not positive",
    "CG502": "channels not divisible by groups",
    "CG503": "add of unequal shapes",
    "CG504": "concat of unequal shapes",
    "CG505": "needs a flat tensor",
    "CG506": "wrong tensor rank",
    "CG507": "declared size does not match",
    "CG508": "size too large",
    "CG509": "padding too large",
    "CG510": "invalid output_padding",
    "CG511": "shapes do not broadcast",
    "CG512": "invalid dimension",
    "CG513": "projection impossible",
    "CG514": "invalid padding for this configuration",
    "CG515": "sizes do not fit the reshape",
    "CG601": "invalid sweep file",
    "CG602": "invalid distribution or grid",
    "CG603": "sweep varies an unknown param",
    "CG604": "invalid --where",
}


@dataclass(frozen=True)
class Location:
    """Where a value came from: file, 1-based line and column, and its key path in the document."""

    file: str
    line: int | None = None
    col: int | None = None
    key: str = ""

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    location: Location
    hint: str | None = None
    severity: Severity = "error"
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.code not in CODES:  # a programming error, not a user one
            raise ValueError(f"unregistered diagnostic code {self.code}")

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.location.file,
            "line": self.location.line,
            "col": self.location.col,
            "key": self.location.key,
            "hint": self.hint,
            "notes": list(self.notes),
        }


class SpecError(Exception):
    """Raised by cnngraph.load when a spec has errors; `.diagnostics` lists all of them."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
        summary = f"{len(errors)} error(s)"
        if first is not None:
            summary += f"; first: {first.location}: {first.code} {first.message}"
        super().__init__(summary)


# A file with thousands of mistakes gets the first ones, quickly: each error may cost a search
# for a suggestion, and no one reads the thousandth.
MAX_ERRORS = 100
MAX_WARNINGS_PER_CODE = 20
MAX_MESSAGE = 500


class Diagnostics:
    """Collects a run's diagnostics; identical reports from many block instances fold into one."""

    def __init__(self, max_errors: int | None = MAX_ERRORS) -> None:
        self.max_errors = max_errors  # None: collect all (a scratch run that is thrown away)
        self._items: list[Diagnostic] = []
        self._seen: dict[tuple[str, str, int | None, int | None, str], int] = {}
        self._repeats: dict[int, int] = {}
        self._errors = 0
        self._warnings: dict[str, list[int]] = {}  # code -> indices of the warnings kept
        self._unshown: dict[str, int] = {}  # code -> warnings past MAX_WARNINGS_PER_CODE
        self._messages: dict[tuple[str, str], int] = {}  # an error's first index
        self._elsewhere: dict[int, list[Location]] = {}  # the same error at other places
        self.count = 0  # reports made, kept or folded: whether a step reported anything

    def add(self, diagnostic: Diagnostic, fold_key: str | None = None) -> None:
        """Record a diagnostic. One with the same code and location as an earlier one (a block
        definition's mistake, seen once per instance) is counted, not repeated; `fold_key`
        keeps apart distinct problems that share a location."""
        self.count += 1
        if len(diagnostic.message) > MAX_MESSAGE:  # a spec's 100,000-character name, quoted
            cut = f"{diagnostic.message[:MAX_MESSAGE]}... ({len(diagnostic.message):,} characters)"
            diagnostic = replace(diagnostic, message=cut)
        loc = diagnostic.location
        detail = fold_key or ("" if loc.line is not None else diagnostic.message)
        key = (diagnostic.code, loc.file, loc.line, loc.col, detail)
        index = self._seen.get(key)
        if index is not None:
            self._repeats[index] = self._repeats.get(index, 0) + 1
            return
        if diagnostic.is_error:  # one mistake made at many call sites: reported once
            first = self._messages.setdefault(
                (diagnostic.code, diagnostic.message), len(self._items)
            )
            if first != len(self._items):
                self._elsewhere.setdefault(first, []).append(loc)
                return
        if not diagnostic.is_error:
            kept = self._warnings.setdefault(diagnostic.code, [])
            if len(kept) >= MAX_WARNINGS_PER_CODE:
                self._unshown[diagnostic.code] = self._unshown.get(diagnostic.code, 0) + 1
                return
            kept.append(len(self._items))
        self._seen[key] = len(self._items)
        self._items.append(diagnostic)
        if diagnostic.is_error:
            self._errors += 1
            if self.max_errors is not None and self._errors >= self.max_errors:
                self._items.append(
                    Diagnostic(
                        "CG001",
                        f"stopped after {self._errors} errors (this is the last one read)",
                        loc,
                        "fix these and run again",
                    )
                )
                raise SpecError(self.items())

    def error(
        self,
        code: str,
        message: str,
        location: Location,
        hint: str | None = None,
        fold_key: str | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        self.add(Diagnostic(code, message, location, hint, "error", notes), fold_key)

    def warning(self, code: str, message: str, location: Location, hint: str | None = None) -> None:
        self.add(Diagnostic(code, message, location, hint, "warning"))

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        for d in diagnostics:
            self.add(d)

    def annotate_first(self, code_prefix: str, note: str) -> None:
        """Add `note` to the first error whose code starts with `code_prefix`."""
        for index, d in enumerate(self._items):
            if d.is_error and d.code.startswith(code_prefix):
                self._items[index] = replace(d, notes=(*d.notes, note))
                return

    @property
    def has_errors(self) -> bool:
        return self._errors > 0

    def items(self) -> list[Diagnostic]:
        out: list[Diagnostic] = []
        last_kept = {kept[-1]: code for code, kept in self._warnings.items()}
        for index, d in enumerate(self._items):
            notes = d.notes
            more = self._repeats.get(index, 0)
            if more:
                notes += (
                    f"the same problem occurs in {more} more place(s) built from this definition",
                )
            elsewhere = self._elsewhere.get(index, [])
            if elsewhere:
                lines = listing(sorted({str(w.line) for w in elsewhere if w.line}, key=int), 8)
                notes += (f"the same error at {len(elsewhere)} more place(s): line(s) {lines}",)
            unshown = self._unshown.get(last_kept.get(index, ""), 0)
            if unshown:
                notes += (f"and {unshown} more {d.code} warning(s) like this, not shown",)
            out.append(replace(d, notes=notes) if notes != d.notes else d)
        return sorted(out, key=_order)

    def raise_if_errors(self) -> None:
        if self.has_errors:
            raise SpecError(self.items())


def _order(d: Diagnostic) -> tuple[str, bool, bool, int, int]:
    """By file, errors first (a warning is often a consequence of an error), then by place;
    `stopped after 100 errors` closes the errors."""
    loc = d.location
    return (loc.file, not d.is_error, d.code == "CG001", loc.line or 0, loc.col or 0)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate `name` is most likely a typo of, if any is close enough."""
    import difflib  # only needed when something is wrong; keeps start-up fast

    # A similarity of 0.6 needs lengths within 3:7 of each other: the rest cannot match. Past
    # MAX_SUGGESTION_SEARCH names (a spec with thousands of layers) no search is made, so that
    # a hundred mistakes cost no more than a hundred small searches.
    if len(name) > MAX_SUGGESTION_LENGTH:  # difflib indexes the whole name first
        return None
    near = [c for c in candidates if 7 * min(len(c), len(name)) >= 3 * max(len(c), len(name))]
    if not near or len(near) > MAX_SUGGESTION_SEARCH:
        return None
    matches = difflib.get_close_matches(name, near, n=1, cutoff=0.6)
    return matches[0] if matches else None


MAX_SUGGESTION_SEARCH = 2000
MAX_SUGGESTION_LENGTH = 100


def listing(names: Iterable[str], limit: int = 12) -> str:
    """`a, b, c` for a hint; past `limit` names, `... and N more` (a spec may have thousands)."""
    shown = list(names)
    if len(shown) <= limit:
        return ", ".join(shown)
    return f"{', '.join(shown[:limit])}, ... and {len(shown) - limit:,} more"


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, if one is close enough to be a likely typo."""
    match = closest(name, candidates)
    return f"did you mean '{match}'?" if match else None


# C0 controls but tab and newline, DEL, C1 controls, and the Unicode line separators and
# direction overrides that reorder what a terminal shows
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with control characters as visible escapes (`\\u001b`): names and paths from a
    spec or a command line must not move a terminal's cursor, recolour it or reorder it."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def format_text(diagnostic: Diagnostic, source_lines: Sequence[str] | None = None) -> str:
    """Compiler-style text: `file:line:col: error CG201: message`, source line, caret, hint."""
    d = diagnostic
    lines = [f"{d.location}: {d.severity} {d.code}: {d.message}"]
    line_no, col = d.location.line, d.location.col
    if (
        source_lines
        and line_no is not None
        and col is not None
        and 0 < line_no <= len(source_lines)
    ):
        text = source_lines[line_no - 1].rstrip("\n")
        if len(text) <= 200:
            lines.append(f"    {text}")
            lines.append("    " + " " * (col - 1) + "^")
    if d.location.key and d.location.line is None:
        lines.append(f"    at key: {d.location.key}")
    lines.extend(f"    note: {note}" for note in d.notes)
    if d.hint:
        lines.append(f"    hint: {d.hint}")
    return "\n".join(lines)


def format_github(diagnostic: Diagnostic) -> str:
    """A GitHub Actions workflow command, so the mistake is annotated on the pull request."""
    d = diagnostic
    kind = "error" if d.is_error else "warning"
    props = [f"file={_property(d.location.file)}"]
    if d.location.line is not None:
        props += [f"line={d.location.line}", f"col={d.location.col}"]
    props.append(f"title={d.code}")
    message = d.message + (f" (hint: {d.hint})" if d.hint else "")
    return f"::{kind} {','.join(props)}::{_data(message)}"


def _data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's rules say."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    """A workflow command's property value: `,` and `:` too, or a file name `a,line=9::x`
    would add properties of its own."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")
