"""The reference documents cover every op and every diagnostic code."""

from __future__ import annotations

import re

import pytest

from cnngraph.errors import CODES
from cnngraph.ops import OPS

from .conftest import ROOT

LANGUAGE = (ROOT / "docs" / "spec-language.md").read_text()
DIAGNOSTICS = (ROOT / "docs" / "diagnostics.md").read_text()


@pytest.mark.parametrize("kind", sorted(OPS))
def test_every_op_is_documented(kind: str) -> None:
    assert re.search(rf"`{re.escape(kind)}`", LANGUAGE), f"{kind} missing from spec-language.md"


def test_every_code_is_documented() -> None:
    documented = set(re.findall(r"^\| (CG\d{3}) \|", DIAGNOSTICS, re.MULTILINE))
    assert documented == set(CODES)
