"""How the generator reads a spec's raw layers and params: entries, their order, references
and name templates, and the type hint each param gets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...params import TYPES
from .pyexpr import Unsupported
from .writer import python_name

SEQUENCE = " sequence"


@dataclass
class Param:
    name: str  # as the spec names it
    py: str  # as the generated code names it
    type: str
    default: Any
    required: bool
    literal: bool = False  # a value set from outside (`--set`): never an expression
    choices: tuple[Any, ...] | None = None

    @property
    def computed(self) -> bool:
        """A default written as an expression: computed in __init__ when not given."""
        return not self.required and not self.literal and written(self.default)


def written(value: Any) -> bool:
    """Whether a spec value is, or holds, an expression (`$name`, `${...}`; not `$$`)."""
    if isinstance(value, list):
        return any(written(item) for item in value)
    return isinstance(value, str) and value.startswith("$") and value[1:2] != "$"


def entry_of(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str) and not raw.startswith("$"):
        return {"op": raw}
    if isinstance(raw, list):
        return {SEQUENCE: raw}
    if isinstance(raw, dict):
        return raw
    raise Unsupported(f"a layer written as {raw!r}")


def pairs(layers: Any) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(name or None for a numbered layer, entry) in order."""
    if isinstance(layers, dict):
        for key, raw in layers.items():
            yield key, entry_of(raw)
    elif isinstance(layers, list):
        for raw in layers:
            yield None, entry_of(raw)
    else:
        raise Unsupported("a body that is neither a list nor a mapping")


def type_of(value: Any) -> str:
    for name, kinds in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(value, kinds):
            return name
    return "list" if isinstance(value, list) else "any"


def param_hint(ptype: str, values: Sequence[Any]) -> str:
    """A type hint for a param from its declared type, or from the values it takes."""
    if ptype in ("int", "float", "bool", "str"):
        return ptype
    if ptype == "pair":
        return "int | tuple[int, int]"  # __init__ makes an int a pair
    present = [v for v in values if v is not None]
    if ptype == "any" and present:
        kinds = {type_of(v) for v in present}
        if len(kinds) == 1 and kinds <= {"int", "float", "bool", "str"}:
            return kinds.pop()
        if kinds <= {"int", "float"} and kinds:
            return "float"
        if kinds == {"list"}:
            ptype = "list"
    if ptype == "list":
        items = [x for v in present if isinstance(v, (list, tuple)) for x in v]
        kinds = {type_of(x) for x in items}
        if items and kinds == {"int"}:
            return "Sequence[int]"
        if items and kinds <= {"int", "float"}:
            return "Sequence[float]"
        return "Sequence[Any]"
    return "Any"


def parse_params(raw: Mapping[str, Any]) -> list[Param]:
    out = []
    for name, value in raw.items():
        py = python_name(name)
        if isinstance(value, str) and value in TYPES:
            out.append(Param(name, py, value, None, True))
        elif isinstance(value, dict) and "type" in value:
            choices = tuple(value["choices"]) if "choices" in value else None
            required = "default" not in value
            out.append(
                Param(name, py, value["type"], value.get("default"), required, False, choices)
            )
        else:
            ptype = "any" if written(value) else type_of(value)
            out.append(Param(name, py, ptype, value, False))
    return out


def is_name(text: str) -> bool:
    return text.isidentifier()


def is_entry(layers: Any) -> bool:
    return isinstance(layers, dict) and ("op" in layers or "block" in layers)


def is_side(entry: dict[str, Any]) -> bool:
    return "from" in entry


def referenced_names(layers: Any) -> set[str]:
    out: set[str] = set()
    for _key, entry in pairs(layers):
        refs = entry.get("from")
        if isinstance(refs, str):
            out.add(refs)
        elif isinstance(refs, list):
            out |= {r for r in refs if isinstance(r, str)}
    return out


def template_parts(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    import string

    return list(string.Formatter().parse(template))


def template_fields(template: str) -> list[str]:
    try:
        return [name for _l, name, _s, _c in template_parts(template) if name]
    except ValueError:
        return []
