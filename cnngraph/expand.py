"""Expansion: blocks, repeats, params and expressions become a flat graph of named nodes.

Names are resolved lexically: a layer's `from:` sees the names of its own body (earlier or
later) and the inputs of the block it is in; at the top level, also dotted paths such as
`layer3.1.relu`. A body refers to another entry by that entry's path; the link step finally
replaces the paths of blocks and repeats with the nodes producing their results.
"""

from __future__ import annotations

import keyword
import re
import string
from collections import ChainMap
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from . import pydantic_errors, replay
from .errors import Diagnostics, did_you_mean, listing
from .expr import (
    INVALID,
    ExprError,
    NeedsShape,
    Pending,
    ReadsInvalid,
    ShapeSymbol,
    contains_pending,
    deferred,
    evaluate,
    list_items,
    source_of,
)
from .expr import spend as expr_spend
from .expr import work_left as expr_work_left
from .ir import INPUT, Graph, Node, Scope, ScopeKind
from .ops import MAX_DIM, OPS, unknown_op_hint
from .params import (
    IDENTIFIER,
    RESERVED,
    WHOLE_VALUES,
    Param,
    check_type,
    not_ascii,
    parse_params,
)
from .replay import Template
from .reserved import clash
from .source import MAX_INT_BITS, Document, KeyPath, out_of_range
from .spec import (
    ENTRY_KEYS,
    INIT_KINDS,
    INIT_SCHEMES,
    BlockDef,
    Init,
    InitRule,
    Layers,
    ResidualSpec,
    SpecFile,
    init_rule,
)

MAX_REPEAT = 1000
MAX_NODES = 50_000
# Entries looked at while expanding, switched-off ones and empty repeats included: blocks
# calling blocks a thousand times each can make 10**12 of them and no layer at all.
MAX_ENTRIES = 2 * MAX_NODES
MAX_NAME_TEMPLATE = 200  # `names:` and the names it makes (formatted once per copy)
_SEQUENCE = " sequence"  # marks an inline list of layers; a space keeps it apart from user keys
MAX_BLOCK_DEPTH = 20  # blocks calling blocks; each level recurses in the expander
_FOR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s+in\s+(\$.*)", re.DOTALL)  # on stripped text
# A generated copy name may also hold '-' (RegNet's `block1-0`); never a '.' (a path separator).
_COPY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


class _TooLarge(Exception):
    """Expansion exceeded MAX_NODES; reported once, then expansion stops."""


@dataclass
class _Cursor:
    """Where planning stands in a list: its next number, and the last layer planned."""

    last: str
    index: int = 0


@dataclass
class _Planned:
    """An entry of a body, ready to expand."""

    local: str
    full: str
    entry: dict[str, Any]
    src: KeyPath
    env: Env
    copies: list[Env] | None = None  # a repeat kept under one name: each copy's names
    index: tuple[int, int] | None = None  # one copy of a repeat spread in a list
    chained: bool = False  # a later copy: takes the previous result, whatever `from` says


@dataclass
class Env:
    """Names visible to expressions, and where each value was written (for diagnostics).

    A child scope layers its names over its parent's rather than copying them: a spec may
    declare thousands of params and make thousands of copies, and copying would be quadratic.
    """

    values: MutableMapping[str, Any] = field(default_factory=dict)
    src: MutableMapping[str, KeyPath] = field(default_factory=dict)

    def with_values(self, values: Mapping[str, Any], src: Mapping[str, KeyPath]) -> Env:
        return Env(_layered(values, self.values), _layered(src, self.src))

    def define(self, name: str, value: Any, src: KeyPath) -> None:
        """Add a name to this scope (params are bound one by one, each seeing the earlier)."""
        self.values[name] = value
        self.src[name] = src


def _layered(top: Mapping[str, Any], below: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`top` over `below`: one dict while they are few (a lookup in a dict is a tenth of one
    in a ChainMap, and expressions look names up all the time), else one flat chain of dicts
    (a chain nested in chains recurses once per scope level). A scope is complete before any
    child is layered over it, so a copy sees what the chain would."""
    if not isinstance(below, ChainMap) and len(below) + len(top) <= _FLAT_SCOPE:
        return {**below, **top}
    maps = below.maps if isinstance(below, ChainMap) else [below]
    return ChainMap(dict(top), *maps)


_FLAT_SCOPE = 64  # names; copying more for every block call and copy would cost more than it saves


def expand(
    doc: Document,
    diags: Diagnostics,
    params: Mapping[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Graph | None:
    """Expand the document into a Graph, or return None when its skeleton is unusable."""
    spec = _validate_skeleton(doc, diags)
    if spec is None:
        return None
    return _Expander(doc, spec, diags).run(params or {}, input_shape)


def _validate_skeleton(doc: Document, diags: Diagnostics) -> SpecFile | None:
    data = doc.data
    if not isinstance(data, dict):
        diags.error(
            "CG202",
            "a spec is a mapping with `cnngraph: 1`, `name`, `input` and `layers`",
            doc.where(()),
            "see specs/ for examples",
        )
        return None
    if "cnngraph" in data and data["cnngraph"] != 1:
        diags.error(
            "CG206",
            f"unsupported format version {data['cnngraph']!r}",
            doc.where(("cnngraph",)),
            "this cnngraph reads format version 1",
        )
        return None
    try:
        return SpecFile.model_validate(data)
    except ValidationError as exc:
        pydantic_errors.report(exc.errors(), data, (), doc, diags, "spec", _skeleton_fields)
        return None


def _skeleton_fields(path: KeyPath) -> list[str]:
    if len(path) == 0:
        return list(SpecFile.model_fields)
    if path[0] == "blocks" and len(path) == 2:
        return list(BlockDef.model_fields)
    if path[0] == "blocks" and len(path) == 3 and path[2] == "residual":
        return list(ResidualSpec.model_fields)
    if path[0] == "init" and len(path) == 2:
        return list(InitRule.model_fields)
    return []


class _Expander:
    def __init__(self, doc: Document, spec: SpecFile, diags: Diagnostics) -> None:
        self.doc = doc
        self.spec = spec
        self.diags = diags
        self.graph = Graph(spec.name, doc, ())
        self.graph.definitions = spec
        self.stack: list[str] = []
        self.used_blocks: set[str] = set()
        self.switched_off: dict[str, KeyPath] = {}
        self.symbols: list[ShapeSymbol] = []
        self.failed: set[str] = set()  # entries that failed to expand, already reported
        self.entries = 0  # entries looked at, against MAX_ENTRIES
        self._param_decls: dict[str, list[Param]] = {}
        self.globals = Env({})
        # what was added, in order, for recording block expansions (replay.py)
        self.templates: dict[Any, Template] = {}
        self._added_nodes: list[Node] = []
        self._added_scopes: list[Scope] = []
        self._added_off: list[tuple[str, KeyPath]] = []

    # ---- top level -------------------------------------------------------------------------

    def run(
        self, overrides: Mapping[str, Any], input_shape: tuple[int, ...] | None
    ) -> Graph | None:
        env = self._model_params(overrides)
        self.globals = env  # what every block sees besides its own params
        shape = input_shape or self._input_shape(env)
        self.graph.overrides = dict(overrides)
        self.graph.input_given = input_shape is not None
        self.graph.input_shape = shape or ()
        self.graph.nodes[INPUT] = Node(INPUT, INPUT, (), {}, ("input",))
        names = {INPUT: INPUT}
        symbol = ShapeSymbol(INPUT)
        env = env.with_values({"in_channels": symbol}, {})
        try:
            last = self._body(self.spec.layers, "", [INPUT], env, ("layers",), names, ())
        except _TooLarge:
            return None  # a part of the model, too large already: nothing more to check
        self._outputs(names, last)
        self._link()
        self.graph.incomplete = bool(self.failed)
        self.graph.params = dict(self.globals.values)
        self.graph.init = {str(kind): init_rule(rule) for kind, rule in self.spec.init.items()}
        self._eval_output()
        chosen_by_params = any(name.startswith("$") for name in self.used_blocks)
        for name in self.spec.blocks:  # a family spec picks blocks by params: all may be used
            if name not in self.used_blocks and not chosen_by_params:
                self.diags.warning(
                    "CG407",
                    f"block '{name}' is never used",
                    self.doc.where(("blocks", name), at_key=True),
                )
        return self.graph

    def _model_params(self, overrides: Mapping[str, Any]) -> Env:
        decls = self._parse_params(self.spec.params, ("params",))
        known = {p.name for p in decls}
        for key in overrides:
            if key not in known:
                self.diags.error(
                    "CG307",
                    f"unknown model param '{key}'",
                    self.doc.where(("params",), at_key=True),
                    did_you_mean(key, known) or f"model params: {listing(sorted(known)) or 'none'}",
                )
        env = Env()
        for p in decls:
            src: KeyPath
            if p.name in overrides:
                value = overrides[p.name]
                src = ("params", p.name)
                if _too_large(value):
                    self.diags.error(
                        "CG307",
                        f"model param '{p.name}' is given a number over {MAX_INT_BITS} bits "
                        "or one that is not finite",
                        self.doc.where(("params",), at_key=True),
                        "sizes, counts and rates are finite and far smaller",
                    )
                    value = INVALID
            elif p.required:
                self.diags.error(
                    "CG308",
                    f"model param '{p.name}' has no default",
                    self.doc.where(p.src),
                    f"pass --set {p.name}=VALUE",
                )
                value, src = INVALID, p.src
            else:
                value, src = self._eval(p.default, env, p.src), p.src
            value = self._check_type(p, value, "the model", p.src)
            env.define(p.name, value, src)
        return env

    def _input_shape(self, env: Env) -> tuple[int, ...] | None:
        shape = []
        for i, raw in enumerate(self.spec.input):
            value = self._eval_static(raw, env, ("input", i), "the input shape")
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIM:
                if value is not INVALID:
                    self.diags.error(
                        "CG202",
                        f"input dims must be integers in 1..{MAX_DIM}, got {value!r}",
                        self.doc.where(("input", i)),
                        "e.g. input: [3, 224, 224] (channels, height, width)",
                    )
                return None
            shape.append(value)
        if len(shape) not in (1, 3):
            self.diags.error(
                "CG202",
                f"input must be [C, H, W] or [features], got {shape}",
                self.doc.where(("input",)),
                "e.g. input: [3, 224, 224] for images, input: [784] for flat features",
            )
            return None
        return tuple(shape)

    def _outputs(self, names: dict[str, str], last: str) -> None:
        raw = self.spec.outputs
        if raw is None:
            self.graph.outputs = {"output": last}
            return
        if isinstance(raw, str):
            # a dotted path's label is a field name of the generated outputs tuple
            items: list[tuple[str, str, KeyPath]] = [(raw.replace(".", "_"), raw, ("outputs",))]
        elif isinstance(raw, list):
            items = [(ref.replace(".", "_"), ref, ("outputs", i)) for i, ref in enumerate(raw)]
        else:
            items = [(label, ref, ("outputs", label)) for label, ref in raw.items()]
        for label, ref, src in items:
            field = IDENTIFIER.match(label) and not keyword.iskeyword(label)
            if not field or label[:1] == "_" or label in ("count", "index", "torch"):
                self.diags.error(
                    "CG202",
                    f"output label '{label}' is not a field name",
                    self.doc.where(src, at_key=isinstance(raw, dict)),
                    "labels name the fields of the model's outputs (a named tuple): an "
                    "identifier, not a keyword, not starting with _, not count, index or torch",
                )
                continue
            if ref in names:
                self.graph.outputs[label] = names[ref]
            elif "." in ref:
                self.graph.outputs[label] = ref  # a dotted path, checked by the link step
            elif ref not in self.switched_off:  # outputs of switched-off parts just vanish
                self.diags.error(
                    "CG405",
                    f"output '{ref}' is not a layer",
                    self.doc.where(src),
                    did_you_mean(ref, names) or "outputs name top-level layers",
                )

    def _eval_output(self) -> None:
        label = self.spec.eval_output
        raw = self.spec.outputs
        declared = [raw] if isinstance(raw, str) else list(raw or [])
        if label is None or label in self.graph.outputs:
            self.graph.eval_output = label
        elif label not in declared:  # a declared output switched off just drops out
            self.diags.error(
                "CG405",
                f"eval_output '{label}' is not one of the outputs",
                self.doc.where(("eval_output",)),
                did_you_mean(label, self.graph.outputs) or "name an output label",
            )

    # ---- bodies and entries ----------------------------------------------------------------

    def _body(
        self,
        layers: Layers,
        prefix: str,
        inputs: list[str],
        env: Env,
        src: KeyPath,
        names: dict[str, str],
        scope: tuple[str, ...],
    ) -> str:
        """Expand entries in sequence; returns the path of the last result."""
        # Planning first claims every name, so a `from:` may refer to a later layer.
        planned = list(self._plan(layers, prefix, env, src, names, _Cursor(inputs[0])))
        prev = inputs[0]
        for item in planned:
            sources = (
                [prev]
                if item.chained
                else self._sources(item.entry, item.src, names, prev, prefix, item.local)
            )
            if sources is None:
                self.failed.add(item.full)
                prev = item.full
                continue
            prev = self._entry(item, sources, scope)
        return prev

    def _plan(
        self,
        layers: Layers,
        prefix: str,
        env: Env,
        src: KeyPath,
        names: dict[str, str],
        cursor: _Cursor,
    ) -> Iterator[_Planned]:
        """First pass over a body: switch entries off, count copies, claim names.

        In a list, the copies of a repeated entry spread into consecutive numbered layers
        (`features.2`, `features.3`, ...), and so do the layers of a `spread: true` block call;
        a named entry keeps its copies together under its name (`layer1.0`, `layer1.1`, ...).
        """
        in_list = isinstance(layers, list)
        pairs = layers.items() if isinstance(layers, dict) else enumerate(layers)
        for key, raw in pairs:
            esrc = (*src, key)
            self._count_entry(esrc)
            entry = self._entry_mapping(raw, esrc)
            if entry is None:
                continue
            local = key if isinstance(key, str) else str(cursor.index)
            full = f"{prefix}.{local}" if prefix else local
            if isinstance(entry.get("block"), str):
                self.used_blocks.add(entry["block"])  # used, even where switched off
            if not self._switched_on(entry, env, esrc, full):
                continue
            copies = self._copies(entry, env, esrc)
            if copies is None and "names" in entry:
                self.diags.error(
                    "CG202",
                    "`names` names the copies of a `repeat` or `for`; this layer has none",
                    self.doc.where((*esrc, "names"), at_key=True),
                    "name a single layer by its key, or add `repeat:`",
                )
            if copies == []:
                self._switch_off(full, esrc)
                continue
            spread = self._spread_flag(entry, esrc, in_list)
            if spread is None:
                continue
            if in_list and (copies is not None or spread):
                yield from self._spread(entry, esrc, env, copies, spread, prefix, names, cursor)
                continue
            cursor.index += 1
            if isinstance(key, str) and not self._valid_name(key, esrc):
                continue
            if not self._claim(names, local, full, esrc):
                continue
            cursor.last = full
            yield _Planned(local, full, entry, esrc, env, copies=copies)

    def _spread(
        self,
        entry: dict[str, Any],
        esrc: KeyPath,
        env: Env,
        copies: list[Env] | None,
        spread: bool,
        prefix: str,
        names: dict[str, str],
        cursor: _Cursor,
    ) -> Iterator[_Planned]:
        """The copies of a list entry (or a spread block's layers), numbered on in the list."""
        for i, copy_env in enumerate(copies or [env]):
            index = (i, len(copies)) if copies is not None else None
            if spread:
                yield from self._spread_block(entry, esrc, copy_env, index, prefix, names, cursor)
                continue
            local = self._copy_name(entry, esrc, copy_env, i, str(cursor.index))
            full = f"{prefix}.{local}" if prefix else local
            cursor.index += 1
            if local and self._claim(names, local, full, esrc):
                cursor.last = full
                yield _Planned(local, full, entry, esrc, copy_env, index=index, chained=i > 0)

    def _spread_block(
        self,
        entry: dict[str, Any],
        esrc: KeyPath,
        env: Env,
        index: tuple[int, int] | None,
        prefix: str,
        names: dict[str, str],
        cursor: _Cursor,
    ) -> Iterator[_Planned]:
        found = self._block_def(entry, esrc, env)
        if found is None:
            return
        name, bdef = found
        if (
            not isinstance(bdef.layers, list)
            or bdef.residual
            or bdef.gate
            or bdef.then is not None
            or bdef.output is not None
            or len(bdef.inputs) > 1
            or "from" in entry
        ):
            self.diags.error(
                "CG313",
                f"block '{name}' cannot spread into the list",
                self.doc.where((*esrc, "spread")),
                "a spread block has a list of layers and no residual, gate, then, output or "
                "extra inputs, and its call takes the previous layer (no `from`)",
            )
            return
        benv = self._bind(name, entry, esrc, env, index, cursor.last)
        self.stack.append(name)
        try:
            planned = list(
                self._plan(bdef.layers, prefix, benv, ("blocks", name, "layers"), names, cursor)
            )
        finally:
            self.stack.pop()
        yield from planned

    def _spread_flag(self, entry: dict[str, Any], esrc: KeyPath, in_list: bool) -> bool | None:
        """The entry's `spread:` (False when absent); None after reporting a misuse."""
        value = entry.get("spread", False)
        if value is False:
            return False
        if value is not True or "block" not in entry or not in_list:
            self.diags.error(
                "CG313",
                "`spread: true` is for a block call in a list",
                self.doc.where((*esrc, "spread")),
                "it places the block's layers into the enclosing list, numbered on",
            )
            return None
        return True

    def _entry_mapping(self, raw: Any, esrc: KeyPath) -> dict[str, Any] | None:
        if isinstance(raw, str) and not raw.startswith("$"):
            return {"op": raw}
        if isinstance(raw, dict):
            return raw
        if isinstance(raw, list):
            return {_SEQUENCE: raw}  # an inline sequence: its layers are numbered .0, .1, ...
        self.diags.error(
            "CG207",
            "a layer is a mapping with `op:` or `block:`, a list of layers, or a bare op name",
            self.doc.where(esrc),
            "e.g. {op: conv2d, out_channels: 64, kernel_size: 3}",
        )
        return None

    def _switched_on(self, entry: dict[str, Any], env: Env, esrc: KeyPath, full: str) -> bool:
        if "if" not in entry:
            return True
        cond = self._eval_static(entry["if"], env, (*esrc, "if"), "`if`")
        if cond is INVALID:
            return False
        if not isinstance(cond, bool):
            self.diags.error(
                "CG312",
                f"`if` must be true or false, got {cond!r}",
                self.doc.where((*esrc, "if")),
                "compare explicitly, e.g. ${depth > 0}",
            )
            return False
        if not cond:
            self._switch_off(full, esrc)
        return cond

    def _copies(self, entry: dict[str, Any], env: Env, esrc: KeyPath) -> list[Env] | None:
        """The environment of each copy of a `repeat:` or `for:` entry; None for one layer."""
        if "for" not in entry:
            count = self._repeat(entry, env, esrc)
            return None if count is None else [env] * count
        fsrc = (*esrc, "for")
        text = entry["for"]
        match = _FOR.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None or "repeat" in entry or keyword.iskeyword(match[1]):
            self.diags.error(
                "CG305",
                "`for` reads `NAME in LIST`, and an entry has `for` or `repeat`, not both",
                self.doc.where(fsrc),
                "e.g. for: stage in $arch",
            )
            return []
        values = self._eval_static(match[2], env, fsrc, "`for`")
        if values is INVALID:
            return []
        if not isinstance(values, list) or len(values) > MAX_REPEAT:
            self.diags.error(
                "CG305",
                f"`for` needs a list of at most {MAX_REPEAT} values, got {values!r}",
                self.doc.where(fsrc),
                "e.g. for: w in ${[64, 128, 256]}, or for: i in ${range(depth)}",
            )
            return []
        return [env.with_values({match[1]: value}, {match[1]: fsrc}) for value in values]

    def _copy_name(
        self, entry: dict[str, Any], esrc: KeyPath, env: Env, i: int, default: str
    ) -> str:
        """The name of copy i: from the entry's `names:` template, else `default` (a number).

        The template's fields are `{i}` (from 0), `{n}` (from 1) and params of the entry's scope:
        torchvision's `denselayer{n}` or RegNet's `block{stage}-{i}`. "" after reporting an error.
        """
        template = entry.get("names")
        if template is None:
            return default
        nsrc = (*esrc, "names")
        values = ChainMap({"i": i, "n": i + 1}, env.values)
        try:
            if isinstance(template, str) and len(template) > MAX_NAME_TEMPLATE:
                raise ValueError(f"the template is over {MAX_NAME_TEMPLATE} characters")
            fields = list(string.Formatter().parse(template)) if isinstance(template, str) else []
            parts = []
            for literal, field, spec, conversion in fields:
                parts.append(literal)
                if field is None:
                    continue
                value = values.get(field) if not (spec or conversion) else None
                if isinstance(value, bool) or not isinstance(value, (int, str)):
                    raise ValueError(f"'{{{field}}}' is not i, n or a number or text param")
                parts.append(str(value))
            name = "".join(parts)
            if len(name) > MAX_NAME_TEMPLATE:
                raise ValueError(
                    f"a name of {len(name):,} characters (at most {MAX_NAME_TEMPLATE})"
                )
            if not _COPY_NAME.match(name):
                raise ValueError(f"'{name}' is not a layer name")
            why = clash(name)
            if why is not None:
                raise ValueError(f"'{name}' is {why}")
        except ValueError as exc:
            self.diags.error(
                "CG202",
                f"`names` must make a layer name per copy: {exc}",
                self.doc.where(nsrc),
                "e.g. names: denselayer{n} (from 1) or names: block{stage}-{i} (from 0)",
            )
            return ""
        return name

    def _repeat(self, entry: dict[str, Any], env: Env, esrc: KeyPath) -> int | None:
        if "repeat" not in entry:
            return None
        count = self._eval_static(entry["repeat"], env, (*esrc, "repeat"), "`repeat`")
        if count is INVALID:
            return 0
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_REPEAT:
            self.diags.error(
                "CG305",
                f"repeat must be an integer in 0..{MAX_REPEAT}, got {count!r}",
                self.doc.where((*esrc, "repeat")),
                "e.g. repeat: 3, or repeat: ${depth * 2}",
            )
            return 0
        return count

    def _valid_name(self, name: str, esrc: KeyPath) -> bool:
        if IDENTIFIER.match(name) and not keyword.iskeyword(name):
            why = clash(name)
            if why is None:
                return True
            self.diags.error(
                "CG202",
                f"layer name '{name}' is {why}",
                self.doc.where(esrc, at_key=True),
                f"a layer becomes a module attribute; rename it (e.g. '{name.strip('_')}_layer')",
            )
            return False
        self.diags.error(
            "CG202",
            f"layer name '{name}' is not a valid identifier{not_ascii(name)}",
            self.doc.where(esrc, at_key=True),
            "names become module attributes: "
            "letters, digits and _, not starting with a digit, not a keyword",
        )
        return False

    def _claim(self, names: dict[str, str], local: str, full: str, esrc: KeyPath) -> bool:
        if local in RESERVED or local in names:
            taken = "a reserved name" if local in RESERVED else "already used in this block"
            self.diags.error(
                "CG402",
                f"duplicate name '{full}': '{local}' is {taken}",
                self.doc.where(esrc, at_key=True),
                "rename this layer",
            )
            return False
        names[local] = full
        return True

    def _sources(
        self,
        entry: dict[str, Any],
        esrc: KeyPath,
        names: dict[str, str],
        prev: str,
        prefix: str,
        local: str,
    ) -> list[str] | None:
        if "from" not in entry:
            return [prev]
        raw = entry["from"]
        refs = [raw] if isinstance(raw, str) else raw
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            self.diags.error(
                "CG202",
                "`from` is a layer name or a list of names",
                self.doc.where((*esrc, "from")),
                "e.g. from: conv1, or from: [branch1, branch2]",
            )
            return None
        out = []
        for i, ref in enumerate(refs):
            rsrc = (*esrc, "from") if isinstance(raw, str) else (*esrc, "from", i)
            full_ref = f"{prefix}.{ref}" if prefix else ref
            if ref in names:
                out.append(names[ref])
            elif "." in ref and not prefix:
                out.append(ref)  # a dotted path into a block, checked by the link step
            elif full_ref in self.switched_off:
                self.diags.error(
                    "CG401",
                    f"'{local}' uses '{ref}', which is switched off",
                    self.doc.where(rsrc),
                    "switch both on and off together (the same `if:`)",
                )
                return None
            else:
                self.diags.error(
                    "CG401",
                    f"unknown reference '{ref}' in `from` of '{local}'",
                    self.doc.where(rsrc),
                    did_you_mean(ref, names) or f"names here: {listing(names)}",
                )
                return None
        return out

    def _entry(self, item: _Planned, sources: list[str], scope: tuple[str, ...]) -> str:
        full, entry, esrc = item.full, item.entry, item.src
        if item.copies is None:
            self._single(full, entry, esrc, sources, item.env, scope, item.index)
            return self._produced(full)
        count = len(item.copies)
        label = str(entry.get("block") or entry.get("op"))
        container = self._scope(full, "repeat", f"{label} x{count}", esrc, sources)
        out = full
        for i, env in enumerate(item.copies):
            name = self._copy_name(entry, esrc, env, i, str(i))
            if not name:  # the template is wrong (reported); no copy can be named
                self.failed.add(full)
                break
            out = f"{full}.{name}"
            self._single(out, entry, esrc, sources, env, (*scope, full), (i, count))
            sources = [self._produced(out)]
        if label.startswith("$"):  # `block: $block`: the block it names, if one
            copied = {self.graph.scopes[p].label for p in self._copy_scopes(full)}
            if len(copied) == 1:
                container.label = f"{copied.pop()} x{count}"
        container.output = out
        return full

    def _copy_scopes(self, full: str) -> list[str]:
        return [
            p
            for p in self.graph.scopes
            if p.startswith(f"{full}.") and "." not in p[len(full) + 1 :]
        ]

    def _produced(self, path: str) -> str:
        """`path`, remembered as failed if expanding it made nothing (its error is reported)."""
        if path not in self.graph.nodes and path not in self.graph.scopes:
            self.failed.add(path)
        return path

    def _single(
        self,
        full: str,
        entry: dict[str, Any],
        esrc: KeyPath,
        sources: list[str],
        env: Env,
        scope: tuple[str, ...],
        index: tuple[int, int] | None,
    ) -> str:
        if "op" in entry and "block" in entry:
            self.diags.error(
                "CG207",
                "a layer has either `op:` or `block:`, not both",
                self.doc.where(esrc),
                "keep `op:` for one layer, `block:` to call a block; make two entries for both",
            )
            return full
        if _SEQUENCE in entry or ("layers" in entry and "block" not in entry and "op" not in entry):
            # an inline sequence: a list, or `layers:` holding a list or named layers
            body, bsrc = (
                (entry[_SEQUENCE], esrc)
                if _SEQUENCE in entry
                else (entry["layers"], (*esrc, "layers"))
            )
            extra = sorted(set(entry) - ENTRY_KEYS - {"layers", _SEQUENCE})
            if not isinstance(body, (dict, list)) or extra:
                self.diags.error(
                    "CG207",
                    f"layer '{full}': `layers:` holds a list or a mapping of layers"
                    + (f", beside entry keys only (not {', '.join(extra)})" if extra else ""),
                    self.doc.where(bsrc),
                    "e.g. {layers: [{op: conv2d, ...}, relu], repeat: 2}: fields belong to "
                    "the layers inside",
                )
                return full
            container = self._scope(full, "block", "sequence", esrc, sources)
            container.output = self._body(body, full, sources, env, bsrc, {}, (*scope, full))
            return full
        if "block" in entry:
            return self._block_call(full, entry, esrc, sources, env, scope, index)
        if "op" in entry:
            return self._op_node(full, entry, esrc, sources, env, scope)
        self.diags.error(
            "CG207",
            f"layer '{full}' needs `op:` or `block:`",
            self.doc.where(esrc),
            did_you_mean(next(iter(entry), ""), ["op", "block"]),
        )
        return full

    def _op_node(
        self,
        full: str,
        entry: dict[str, Any],
        esrc: KeyPath,
        sources: list[str],
        env: Env,
        scope: tuple[str, ...],
    ) -> str:
        kind = self._eval_static(entry["op"], env, (*esrc, "op"), "`op`")
        if kind is INVALID:
            return full
        if not isinstance(kind, str) or kind not in OPS:
            self.diags.error(
                "CG204",
                f"unknown op '{kind}'",
                self.doc.where((*esrc, "op")),
                unknown_op_hint(str(kind), self.spec.blocks),
            )
            return full
        fields: dict[str, Any] = {}
        field_src: dict[str, KeyPath] = {}
        for key, raw in entry.items():
            if key not in ENTRY_KEYS:
                fields[key] = self._eval(raw, env, (*esrc, key))
                origin = self._origin(raw, env)
                if origin is not None:
                    field_src[key] = origin
        node = Node(full, kind, tuple(sources), fields, esrc, field_src, scope)
        node.init = self._init_scheme(entry, kind, env, esrc)
        self._add(node)
        return full

    def _init_scheme(
        self, entry: dict[str, Any], kind: str, env: Env, esrc: KeyPath
    ) -> Init | None:
        if "init" not in entry:
            return None
        isrc = (*esrc, "init")
        scheme = self._eval_static(entry["init"], env, isrc, "`init`")
        if scheme is INVALID:
            return None
        if kind not in INIT_KINDS:
            self.diags.error(
                "CG202",
                f"`init` applies to layers with weights, not {kind}",
                self.doc.where(isrc, at_key=True),
                f"ops: {', '.join(INIT_KINDS)}",
            )
            return None
        if isinstance(scheme, dict):
            try:
                return init_rule(InitRule.model_validate(scheme))
            except ValidationError as exc:
                fields = list(InitRule.model_fields)
                pydantic_errors.report(
                    exc.errors(), scheme, isrc, self.doc, self.diags, "init", lambda _: fields
                )
                return None
        if scheme not in INIT_SCHEMES:
            self.diags.error(
                "CG202",
                f"unknown init scheme {scheme!r}",
                self.doc.where(isrc),
                did_you_mean(str(scheme), INIT_SCHEMES) or f"schemes: {', '.join(INIT_SCHEMES)}",
            )
            return None
        return init_rule(str(scheme))

    # ---- blocks ----------------------------------------------------------------------------

    def _block_call(
        self,
        full: str,
        entry: dict[str, Any],
        esrc: KeyPath,
        sources: list[str],
        env: Env,
        scope: tuple[str, ...],
        index: tuple[int, int] | None,
    ) -> str:
        found = self._block_def(entry, esrc, env)
        if found is None:
            return full
        name, bdef = found
        if len(sources) != len(bdef.inputs):
            self.diags.error(
                "CG408",
                f"block '{name}' takes {len(bdef.inputs)} input(s) "
                f"({', '.join(bdef.inputs)}), '{full}' gives {len(sources)}",
                self.doc.where((*esrc, "from") if "from" in entry else esrc),
                f"give one per input: from: [{', '.join(bdef.inputs)}]",
            )
            return full
        benv = self._bind(name, entry, esrc, env, index, sources[0])
        instance = self._scope(full, "block", name, esrc, sources)
        decls = self._param_decls[name]
        instance.params = {p.name: benv.values[p.name] for p in decls}
        params = [(p.name, benv.values[p.name], benv.src[p.name]) for p in decls]
        call = replay.key(name, params, sources, tuple(self.stack))
        template = self.templates.get(call) if call is not None else None
        if template is not None and self._may_replay(template):
            instance.output = self._replay(template, full, sources, scope)
            return full
        marks = (len(self._added_nodes), len(self._added_scopes), len(self._added_off))
        reports, entries, work = self.diags.count, self.entries, expr_work_left()
        self.stack.append(name)
        try:
            instance.output = self._block_body(full, name, bdef, sources, benv, (*scope, full))
        finally:
            self.stack.pop()
        if call is not None and self.diags.count == reports:
            self.templates[call] = Template(
                full,
                tuple(sources),
                instance.output,
                len(scope),
                self._added_nodes[marks[0] :],
                self._added_scopes[marks[1] :],
                self._added_off[marks[2] :],
                self.entries - entries,
                (work or 0) - (expr_work_left() or 0),
            )
        return full

    def _may_replay(self, template: Template) -> bool:
        """Whether a replay stays within the limits: where it would not, expanding reports
        the limit at the place and in the order expanding reaches it."""
        left = expr_work_left()
        return (
            self.entries + template.entries <= MAX_ENTRIES
            and len(self.graph.nodes) + len(template.nodes) < MAX_NODES
            and (left is None or template.work <= left)
        )

    def _replay(
        self, template: Template, full: str, sources: list[str], scope: tuple[str, ...]
    ) -> str:
        """A recorded expansion of this block, with these params, under a new name."""
        self.entries += template.entries
        expr_spend(template.work)  # what expanding again would spend (within the budget)
        rename = replay.Renamer(template, full, sources, scope)
        for inner in template.scopes:
            copy = rename.scope(inner)
            made = self._scope(copy.path, copy.kind, copy.label, copy.src, list(copy.inputs))
            made.output, made.params = copy.output, copy.params
        for node in template.nodes:
            self._add(rename.node(node))
        for name, src in template.switched_off:
            self._switch_off(rename.defined(name), src)
        self.symbols.extend(rename.symbols)
        return rename.name(template.output)

    def _block_def(
        self, entry: dict[str, Any], esrc: KeyPath, env: Env
    ) -> tuple[str, BlockDef] | None:
        """The block an entry calls, or None after reporting why there is none."""
        name = self._eval_static(entry["block"], env, (*esrc, "block"), "`block`")
        if name is INVALID:
            return None
        bdef = self.spec.blocks.get(name) if isinstance(name, str) else None
        if bdef is None:
            hint = did_you_mean(str(name), self.spec.blocks)
            if isinstance(name, str) and name in OPS:
                hint = f"'{name}' is an op: write `op: {name}`"
            self.diags.error(
                "CG205",
                f"unknown block '{name}'",
                self.doc.where((*esrc, "block")),
                hint or f"blocks: {listing(self.spec.blocks) or 'none defined'}",
            )
            return None
        if name in self.stack:
            self.diags.error(
                "CG309",
                f"block '{name}' uses itself (via {' -> '.join([*self.stack, name])})",
                self.doc.where(esrc),
                "a block cannot contain itself; repeat it with `repeat:` where it is called",
            )
            return None
        if len(self.stack) >= MAX_BLOCK_DEPTH:
            self.diags.error(
                "CG309",
                f"blocks nested more than {MAX_BLOCK_DEPTH} deep (via '{self.stack[0]}')",
                self.doc.where(esrc),
                "a network this deep is written with `repeat:` or `for:`, not nested calls",
            )
            return None
        self.used_blocks.add(name)
        return name, bdef

    def _bind(
        self,
        name: str,
        entry: dict[str, Any],
        esrc: KeyPath,
        env: Env,
        index: tuple[int, int] | None,
        first_input: str,
    ) -> Env:
        decls = self._param_decls.get(name)
        if decls is None:
            decls = self._parse_params(self.spec.blocks[name].params, ("blocks", name, "params"))
            self._param_decls[name] = decls
        declared = {p.name for p in decls}
        for key in entry:
            if key not in ENTRY_KEYS and key not in declared:
                self.diags.error(
                    "CG307",
                    f"block '{name}' has no param '{key}'",
                    self.doc.where((*esrc, key), at_key=True),
                    did_you_mean(key, declared)
                    or f"params of '{name}': {listing(sorted(declared)) or 'none'}",
                )
        symbol = ShapeSymbol(first_input)
        self.symbols.append(symbol)
        # Lexical scope: the block sees its params and the model's, never its caller's.
        benv = self.globals.with_values({"in_channels": symbol}, {})
        for p in decls:
            if p.name in entry:
                raw, psrc = entry[p.name], (*esrc, p.name)
                per_repeat = index is not None and p.type not in WHOLE_VALUES
                if per_repeat:  # `${[s, 1]}` is the list [$s, 1]: a value per repeat
                    raw = list_items(raw) or raw
                if per_repeat and isinstance(raw, list):
                    # a literal count takes no surplus values: there they can only be a mistake
                    surplus = not isinstance(entry.get("repeat"), int)
                    raw, psrc = self._per_repeat(raw, psrc, index or (0, 1), name, p.name, surplus)
                value = self._eval(raw, env, psrc)
                psrc = self._origin(raw, env) or psrc
            elif p.required:
                self.diags.error(
                    "CG308",
                    f"block '{name}' needs param '{p.name}'",
                    self.doc.where(esrc),
                    f"add `{p.name}: ...` to this call",
                )
                value, psrc = INVALID, esrc
            else:
                value, psrc = self._eval(p.default, benv, p.src), p.src
            value = self._check_type(p, value, f"block '{name}'", psrc)
            benv.define(p.name, value, psrc)
        return benv

    def _per_repeat(
        self,
        raw: list[Any],
        psrc: KeyPath,
        index: tuple[int, int],
        block: str,
        param: str,
        surplus: bool,
    ) -> tuple[Any, KeyPath]:
        i, count = index
        if not raw or (len(raw) > count and not surplus):
            if i == 0:
                self.diags.error(
                    "CG306",
                    f"'{param}' of block '{block}' lists {len(raw)} values for {count} repeats",
                    self.doc.where(psrc),
                    "give one value per repeat at most; the last value carries "
                    "on to the remaining repeats",
                )
            return INVALID, psrc
        j = min(i, len(raw) - 1)
        return raw[j], (*psrc, j)

    def _block_body(
        self,
        full: str,
        name: str,
        bdef: BlockDef,
        sources: list[str],
        env: Env,
        scope: tuple[str, ...],
    ) -> str:
        bsrc: KeyPath = ("blocks", name)
        inputs = dict(zip(bdef.inputs, sources, strict=True))  # what every body may refer to
        names = dict(inputs)
        if bdef.layers is not None:
            out = self._body(bdef.layers, full, sources, env, (*bsrc, "layers"), names, scope)
        else:
            outs = []
            for branch, layers in (bdef.branches or {}).items():
                path = f"{full}.{branch}"
                brsrc = (*bsrc, "branches", branch)
                if not self._claim(names, branch, path, brsrc):
                    continue
                if _is_entry(layers):  # a branch that is one layer or block, named as the branch
                    entry = {branch: layers}
                    outs.append(
                        self._body(
                            entry, full, sources, env, (*bsrc, "branches"), dict(inputs), scope
                        )
                    )
                    continue
                container = self._scope(path, "branch", branch, brsrc, sources)
                container.output = self._body(
                    layers, path, sources, env, brsrc, dict(inputs), (*scope, path)
                )
                outs.append(path)
            out = self._join(full, str(bdef.merge), outs, (*bsrc, "merge"), names, scope)
        if bdef.residual:
            out = self._residual(
                full, bdef.residual, sources[0], out, env, (*bsrc, "residual"), names, scope
            )
        if bdef.gate:
            out = self._join(
                full, "gate", [sources[0], out], (*bsrc, "gate"), names, scope, kind="mul"
            )
        if bdef.then is not None:
            then: Layers = (
                bdef.then
                if not isinstance(bdef.then, str) and not _is_entry(bdef.then)
                else {"then": bdef.then}  # one layer, named `then`
            )
            out = self._body(then, full, [out], env, (*bsrc, "then"), names, scope)
        if bdef.output is not None:
            if bdef.output in names:
                return names[bdef.output]
            self.diags.error(
                "CG401",
                f"block '{name}': output '{bdef.output}' is not a layer of the block",
                self.doc.where((*bsrc, "output")),
                did_you_mean(bdef.output, names),
            )
        return out

    def _join(
        self,
        full: str,
        local: str,
        sources: list[str],
        src: KeyPath,
        names: dict[str, str],
        scope: tuple[str, ...],
        kind: str | None = None,
        when: Any = True,
    ) -> str:
        """The node joining a block's paths (concat, add, gate), named after what it does."""
        path = f"{full}.{local}"
        if local in names:
            self.diags.error(
                "CG402",
                f"'{path}': a layer named '{local}' takes the name of the "
                f"block's {kind or local} join",
                self.doc.where(src, at_key=True),
                f"rename that layer; '{local}' names the join",
            )
        else:
            names[local] = path
            self._add(Node(path, kind or local, tuple(sources), {}, src, scope=scope, when=when))
        return path

    def _residual(
        self,
        full: str,
        raw: bool | ResidualSpec,
        shortcut: str,
        out: str,
        env: Env,
        src: KeyPath,
        names: dict[str, str],
        scope: tuple[str, ...],
    ) -> str:
        spec = raw if isinstance(raw, ResidualSpec) else ResidualSpec()
        when: Any = spec.when
        if isinstance(when, str):
            when = self._eval(when, env, (*src, "when"))
            if when is INVALID:
                return out
            if not isinstance(when, (bool, Pending)):
                self.diags.error(
                    "CG312",
                    f"residual `when` must be true or false, got {when!r}",
                    self.doc.where((*src, "when")),
                    "compare explicitly, e.g. when: ${stride == 1 and in_channels == out}",
                )
                return out
        if when is False:
            return out
        if spec.projection is not None:
            proj = f"{full}.{spec.projection}"
            psrc = (*src, "projection")
            if self._valid_name(spec.projection, psrc) and self._claim(
                names, spec.projection, proj, psrc
            ):
                self._add(
                    Node(
                        proj,
                        "projection",
                        (shortcut, out),
                        {"norm": spec.norm},
                        src,
                        scope=scope,
                        when=when,
                    )
                )
                shortcut = proj
        return self._join(full, "add", [out, shortcut], src, names, scope, when=when)

    # ---- params and values -----------------------------------------------------------------

    def _parse_params(self, raw: dict[str, Any], src: KeyPath) -> list[Param]:
        return parse_params(raw, src, self.diags, self.doc)

    def _check_type(self, p: Param, value: Any, owner: str, src: KeyPath) -> Any:
        return check_type(p, value, owner, src, self.diags, self.doc)

    def _eval(self, raw: Any, env: Env, src: KeyPath) -> Any:
        """Evaluate a spec value: expressions become values, or Deferred if they need shapes."""
        if isinstance(raw, list):
            return [self._eval(item, env, (*src, i)) for i, item in enumerate(raw)]
        if not isinstance(raw, str) or not raw.startswith("$"):
            return raw
        if raw.startswith("$$"):
            return raw[1:]  # an escaped literal dollar
        try:
            text = source_of(raw)
            if text is None:  # pragma: no cover - raw starts with $
                return raw
            try:
                return evaluate(text, env.values)
            except NeedsShape:
                return deferred(text, env.values)
        except ReadsInvalid:
            return INVALID
        except ExprError as exc:
            self.diags.error(exc.code, exc.message, self.doc.where(src), exc.hint)
            return INVALID

    def _eval_static(self, raw: Any, env: Env, src: KeyPath, what: str) -> Any:
        value = self._eval(raw, env, src)
        if contains_pending(value):
            self.diags.error(
                "CG310",
                f"{what} cannot depend on tensor shapes (in_channels)",
                self.doc.where(src),
                "only layer fields, block params and residual `when` may use in_channels",
            )
            return INVALID
        return value

    def _origin(self, raw: Any, env: Env) -> KeyPath | None:
        """For a bare `$name`, where that name's value was written: the call site, usually."""
        if isinstance(raw, str) and raw.startswith("$") and not raw.startswith("${"):
            return env.src.get(raw[1:])
        return None

    # ---- graph building --------------------------------------------------------------------

    def _count_entry(self, esrc: KeyPath) -> None:
        self.entries += 1
        if self.entries > MAX_ENTRIES:
            self.diags.error(
                "CG311",
                f"expanding the spec looks at more than {MAX_ENTRIES:,} entries "
                "(layers, block calls and switched-off entries)",
                self.doc.where(esrc),
                "check repeat counts and params",
            )
            raise _TooLarge

    def _add(self, node: Node) -> None:
        if len(self.graph.nodes) >= MAX_NODES:
            self.diags.error(
                "CG311",
                f"the model expands to more than {MAX_NODES:,} layers",
                self.doc.where(node.src),
                "check repeat counts and params",
            )
            raise _TooLarge
        if node.name in self.graph.nodes or node.name in self.graph.scopes:
            self.diags.error(
                "CG402",
                f"duplicate name '{node.name}'",
                self.doc.where(node.src),
                "every layer in a body has its own name; rename one (or check `names:`)",
            )
            return
        self.graph.nodes[node.name] = node
        self._added_nodes.append(node)

    def _scope(
        self, path: str, kind: ScopeKind, label: str, src: KeyPath, inputs: list[str]
    ) -> Scope:
        scope = Scope(path, kind, label, src, inputs=tuple(inputs))
        if path in self.graph.nodes or path in self.graph.scopes:
            self.diags.error(
                "CG402",
                f"duplicate name '{path}'",
                self.doc.where(src),
                "every layer in a body has its own name; rename one (or check `names:`)",
            )
        else:
            self.graph.scopes[path] = scope
            self._added_scopes.append(scope)
        return scope

    def _switch_off(self, full: str, esrc: KeyPath) -> None:
        self.switched_off[full] = esrc
        self._added_off.append((full, esrc))

    def _link(self) -> None:
        """Replace references to blocks and repeats by the nodes producing their results."""
        for node in self.graph.nodes.values():
            linked = []
            for ref in node.inputs:
                target = self._final(ref)
                if target is None and not self._failed(ref):
                    self.diags.error(
                        "CG401",
                        f"'{node.name}' uses unknown layer '{ref}'",
                        self.doc.where((*node.src, "from")),
                        did_you_mean(ref, self.graph.nodes),
                    )
                linked.append(target or ref)
            node.inputs = tuple(linked)
        for scope in self.graph.scopes.values():
            scope.output = self._final(scope.output) or scope.output
            scope.inputs = tuple(self._final(ref) or ref for ref in scope.inputs)
        for symbol in self.symbols:
            symbol.node = self._final(symbol.node) or symbol.node
        for label, ref in list(self.graph.outputs.items()):
            target = self._final(ref)
            if target is None and self._failed(ref):  # its own error is reported
                del self.graph.outputs[label]
            elif target is None:
                self.diags.error(
                    "CG405",
                    f"output '{ref}' is not a layer",
                    self.doc.where(("outputs",)),
                    did_you_mean(ref, self.graph.nodes),
                )
                del self.graph.outputs[label]
            else:
                self.graph.outputs[label] = target

    def _failed(self, ref: str) -> bool:
        """Whether `ref` names an entry that failed to expand (its error is already reported)."""
        parts = ref.split(".")
        return any(".".join(parts[:i]) in self.failed for i in range(1, len(parts) + 1))

    def _final(self, ref: str) -> str | None:
        seen = set()
        while ref in self.graph.scopes and ref not in seen:
            seen.add(ref)
            ref = self.graph.scopes[ref].output
        return ref if ref in self.graph.nodes else None


def _is_entry(layers: Any) -> bool:
    return isinstance(layers, dict) and ("op" in layers or "block" in layers)


def _too_large(value: Any) -> bool:
    """An integer too large to mean anything here (and to print: Python's limit is 4,300
    digits), or an infinite or NaN float, alone or in a table."""
    if isinstance(value, (list, tuple)):
        return any(_too_large(v) for v in value)
    return out_of_range(value)
