"""Params of models and blocks: their declarations (`name: int`, `name: 3`, `{type: pair,
default: [3, 3]}`, `{type: float, default: 1.0, choices: [1.0, 1.1]}`), and the check of each
value given against its declared type and choices."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import Diagnostics
from .expr import INVALID, Pending
from .ir import INPUT
from .source import Document, KeyPath

TYPES = ("int", "float", "bool", "str", "list", "pair", "any")
# types whose list values are whole values, never one value per repeat
WHOLE_VALUES = frozenset({"list", "pair", "any"})
RESERVED = frozenset({INPUT, "in_channels"})
CONSTANTS = frozenset({"true", "false", "null"})  # YAML's words, values in expressions
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LONG_FORM = frozenset({"type", "default", "choices"})


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any
    required: bool
    src: KeyPath
    choices: tuple[Any, ...] | None = None  # the values it may take, where the spec lists them


def not_ascii(name: str) -> str:
    """Why a name that Python would accept is refused: `state_dict` keys, file names and
    expressions stay ASCII, and Python folds some Unicode names into others (NFKC)."""
    return "" if name.isascii() else " (names are ASCII: a-z, A-Z, 0-9 and _)"


def parse_params(
    raw: dict[str, Any], src: KeyPath, diags: Diagnostics, doc: Document
) -> list[Param]:
    out = []
    for name, value in raw.items():
        psrc = (*src, name)
        dunder = name.startswith("__") and name.endswith("__")
        if not IDENTIFIER.match(name) or name in RESERVED or name in CONSTANTS or dunder:
            diags.error(
                "CG307",
                f"'{name}' cannot be a param name{not_ascii(name)}",
                doc.where(psrc, at_key=True),
                "in_channels and input are reserved, true, false and null are values "
                "in expressions, and __dunder__ names are Python's; use another identifier",
            )
            continue
        if isinstance(value, str) and value in TYPES:
            out.append(Param(name, value, None, True, psrc))
        elif isinstance(value, dict) and set(value) <= _LONG_FORM and "type" in value:
            ptype, choices = value["type"], value.get("choices")
            if ptype not in TYPES:
                diags.error(
                    "CG307",
                    f"param '{name}' has unknown type {ptype!r}",
                    doc.where((*psrc, "type")),
                    f"types: {', '.join(TYPES)}",
                )
                continue
            if choices is not None and (not isinstance(choices, list) or not choices):
                diags.error(
                    "CG307",
                    f"the choices of param '{name}' must be a list of values",
                    doc.where((*psrc, "choices")),
                    "e.g. choices: [1.0, 1.1]",
                )
                continue
            default = value.get("default")
            given = tuple(choices) if choices is not None else None
            out.append(
                Param(name, ptype, default, "default" not in value, (*psrc, "default"), given)
            )
        else:
            out.append(Param(name, _type_of(value), value, False, psrc))
    return out


def check_type(
    p: Param, value: Any, owner: str, src: KeyPath, diags: Diagnostics, doc: Document
) -> Any:
    """`value` as the param holds it (a pair as [height, width]), or INVALID after reporting
    why it does not fit. The message names the declaration, not the value, so that one wrong
    declaration called from many places is one error with its places listed."""
    if value is INVALID or isinstance(value, Pending):
        return value
    if p.type == "pair" and _is_int(value):
        value = [value, value]
    if _fits(p.type, value) and p.choices is not None and value not in p.choices:
        diags.error(
            "CG307",
            f"param '{p.name}' of {owner} is {value!r}, not one of its choices",
            doc.where(src),
            f"choices: {', '.join(map(repr, p.choices))}",
        )
        return INVALID
    if _fits(p.type, value):
        return value
    declared = doc.where(p.src).line
    at = f" (line {declared})" if declared else ""
    given = type_name(value)
    if p.type == "int" and _fits("pair", value):
        hint = f"an int or a pair [h, w]: declare it `{p.name}: {{type: pair, default: 3}}`{at}"
    else:
        hint = f"give a value of type {p.type}, or declare it `{p.name}: {{type: {given}}}`{at}"
    diags.error(
        "CG307",
        f"param '{p.name}' of {owner} is declared {p.type}, given a value of type {given}",
        doc.where(src),
        hint,
    )
    return INVALID


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fits(ptype: str, value: Any) -> bool:
    if ptype == "pair":
        return isinstance(value, list) and len(value) == 2 and all(map(_is_int, value))
    if ptype in ("int", "float"):
        return _is_int(value) or (ptype == "float" and isinstance(value, float))
    kinds = {"bool": bool, "str": str, "list": list}
    return ptype == "any" or isinstance(value, kinds[ptype])


def _type_of(default: Any) -> str:
    """The type a param declared by its default has."""
    if isinstance(default, str) and default.startswith("$"):
        return "any"  # an expression; its value is checked where it is used
    return type_name(default)


def type_name(value: Any) -> str:
    """The param type a value has (`list` for [1, 3]); `any` where none fits."""
    for name in ("bool", "int", "float", "str", "list"):
        if _fits(name, value) and not (name == "float" and _is_int(value)):
            return name
    return "any"
