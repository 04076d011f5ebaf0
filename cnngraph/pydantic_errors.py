"""Turning pydantic validation errors into diagnostics: one per offending value, at its location."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic_core import ErrorDetails

from .errors import Diagnostics, closest, did_you_mean
from .source import Document, KeyPath, has

# Names pydantic puts into error paths for union members and validators, not user keys.
_TAGS = {
    "str",
    "int",
    "bool",
    "float",
    "list",
    "dict",
    "none",
    "ResidualSpec",
    "BlockDef",
    "InitRule",
}


def _locate(data: Any, loc: Sequence[int | str]) -> KeyPath:
    """The path in `data` an error is about: its error path, less pydantic's own tags for
    union members and validators, cut where the data ends (errors inside one value group)."""
    out: list[str | int] = []
    for part in loc:
        if has(data, part):
            data = data[part]
            out.append(part)
        elif isinstance(part, str) and ("[" in part or part in _TAGS):
            continue
        else:
            if isinstance(part, str) and isinstance(data, dict):
                out.append(part)  # a missing or unknown key is itself the location
            break
    return tuple(out)


def report(
    errors: Sequence[ErrorDetails],
    data: Any,
    base: KeyPath,
    doc: Document,
    diags: Diagnostics,
    what: str,
    fields_at: Callable[[KeyPath], Sequence[str]],
    where: Callable[[KeyPath, bool], Any] | None = None,
) -> None:
    """Report pydantic `errors` for `data` (found at `base` in `doc`) as diagnostics.

    `fields_at(path)` lists the fields valid at a path, for did-you-mean hints; `where`
    overrides how a path maps to a location (for values that came from elsewhere).
    """
    locate = where or (lambda path, at_key: doc.where((*base, *path), at_key))
    groups: dict[KeyPath, list[ErrorDetails]] = {}
    for err in errors:
        groups.setdefault(_locate(data, err["loc"]), []).append(err)
    paths = list(groups)
    # A missing field with a misspelt twin (kernal_size for kernel_size) is one mistake, not two.
    typos = {
        (*path[:-1], closest(str(path[-1]), fields_at(path[:-1])))
        for path, errs in groups.items()
        if path and any(e["type"] == "extra_forbidden" for e in errs)
    }
    for path, errs in groups.items():
        if any(other[: len(path)] == path and other != path for other in paths):
            continue  # a deeper error says more about the same value
        if path in typos and all(e["type"] == "missing" for e in errs):
            continue
        types = {e["type"] for e in errs}
        name = ".".join(str(p) for p in path)
        if "extra_forbidden" in types:
            candidates = list(fields_at(path[:-1]))
            code, detail, loc = "CG201", f"unknown field '{path[-1]}'", locate(path, True)
            hint = did_you_mean(str(path[-1]), candidates) or (
                f"fields: {', '.join(candidates)}" if candidates else None
            )
        elif "missing" in types and path == ("cnngraph",):
            code, detail, loc = "CG206", "missing format version", locate((), False)
            hint = "start the spec with `cnngraph: 1`"
        elif "missing" in types:
            code, detail, loc = "CG203", f"missing field '{name}'", locate(path[:-1], False)
            hint = None
        else:
            messages = list(dict.fromkeys(_message(e) for e in errs))
            on_key = any("[key]" in e["loc"] for e in errs)  # a mapping's key is wrong
            got = errs[0].get("input")
            shown = "" if isinstance(got, (dict, list, Mapping)) else f" (got {got!r})"
            detail = f"{name + ' ' if path else ''}{' or '.join(messages)}{shown}"
            code, loc = "CG202", locate(path, on_key)
            hint = did_you_mean(got, _allowed(errs)) if isinstance(got, str) else None
        diags.error(code, f"{what}: {detail}", loc, hint, fold_key=detail)


def _message(err: ErrorDetails) -> str:
    if err["type"] == "model_type":  # pydantic names its class; users wrote a mapping
        return "must be a mapping"
    return str(err["msg"]).replace("Value error, ", "").replace("Input should be", "must be")


def _allowed(errs: Sequence[ErrorDetails]) -> list[str]:
    """The values a literal accepts, as pydantic lists them ("'a', 'b' or 'c'")."""
    return [
        value
        for e in errs
        if e["type"] == "literal_error"
        for value in re.findall(r"'([^']*)'", str(e.get("ctx", {}).get("expected", "")))
    ]
