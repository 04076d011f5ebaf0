"""Checks of every layer a spec writes, whether its params use it or not.

Op names, field names and block names need no params, so a typo in a block or a branch that
the default params leave off (`kernal_size` in ResNet's `basic` block while the default is
`bottleneck`) is found by `validate` all the same. What the expansion already reported is not
reported twice.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from ..errors import Diagnostics, did_you_mean, listing
from ..ops import OPS, unknown_op_hint
from ..source import Document, KeyPath
from ..spec import ENTRY_KEYS, SpecFile


def check_definitions(spec: SpecFile, doc: Document, diags: Diagnostics) -> None:
    reported = {(d.code, d.location.line, d.location.col) for d in diags.items()}
    checker = _Checker(spec, doc, diags, reported)
    checker.body(spec.layers, ("layers",))
    for name, block in spec.blocks.items():
        src: KeyPath = ("blocks", name)
        if block.layers is not None:
            checker.body(block.layers, (*src, "layers"))
        for branch, layers in (block.branches or {}).items():
            checker.body(layers, (*src, "branches", branch))
        if block.then is not None:
            checker.body(block.then, (*src, "then"))


class _Checker:
    def __init__(
        self,
        spec: SpecFile,
        doc: Document,
        diags: Diagnostics,
        reported: set[tuple[str, int | None, int | None]],
    ) -> None:
        self.spec, self.doc, self.diags, self.reported = spec, doc, diags, reported

    def body(self, layers: Any, src: KeyPath) -> None:
        """A body: a list or mapping of entries, or a single entry (a branch of one layer)."""
        if isinstance(layers, str):
            self.entry({"op": layers}, src, bare=True)
        elif isinstance(layers, dict) and ("op" in layers or "block" in layers):
            self.entry(layers, src)
        elif isinstance(layers, dict):
            for key, raw in layers.items():
                self.raw(raw, (*src, key))
        elif isinstance(layers, list):
            for index, raw in enumerate(layers):
                self.raw(raw, (*src, index))

    def raw(self, raw: Any, src: KeyPath) -> None:
        if isinstance(raw, str) and not raw.startswith("$"):
            self.entry({"op": raw}, src, bare=True)
        elif isinstance(raw, list):
            self.body(raw, src)
        elif isinstance(raw, dict):
            if "op" not in raw and "block" not in raw and "layers" in raw:
                self.body(raw["layers"], (*src, "layers"))  # an inline sequence
            else:
                self.entry(raw, src)

    def entry(self, entry: dict[str, Any], src: KeyPath, bare: bool = False) -> None:
        op, block = entry.get("op"), entry.get("block")
        if _literal(op) and op not in OPS:
            where = src if bare else (*src, "op")
            hint = unknown_op_hint(op, self.spec.blocks)
            self.error("CG204", f"unknown op '{op}'", where, False, hint)
        elif _literal(op):
            fields = OPS[op].model_fields
            for key in entry:
                if key not in ENTRY_KEYS and key not in fields:
                    hint = did_you_mean(str(key), fields) or f"fields: {', '.join(fields)}"
                    self.error("CG201", f"{op}: unknown field '{key}'", (*src, key), True, hint)
        if _literal(block) and block not in self.spec.blocks:
            hint = did_you_mean(block, self.spec.blocks) or (
                f"blocks: {listing(self.spec.blocks) or 'none defined'}"
            )
            self.error("CG205", f"unknown block '{block}'", (*src, "block"), False, hint)

    def error(self, code: str, message: str, src: KeyPath, at_key: bool, hint: str) -> None:
        where = self.doc.where(src, at_key)
        if (code, where.line, where.col) in self.reported:
            return
        self.reported.add((code, where.line, where.col))
        self.diags.error(code, message, where, hint)


def _literal(value: Any) -> TypeGuard[str]:
    """A name written as it is (not `$param` or `${...}`)."""
    return isinstance(value, str) and not value.startswith("$")
