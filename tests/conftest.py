"""Shared helpers: paths, the reference table, and building torch modules from op emissions."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
REFERENCE = ROOT.parent / "shared" / "reference" / "torchvision_models.tsv"


def reference_rows() -> dict[str, dict[str, int]]:
    """torchvision's reference figures keyed by model name (IMAGENET1K_V1 weights)."""
    rows: dict[str, dict[str, int]] = {}
    with REFERENCE.open() as fh:
        lines = [line for line in fh if not line.startswith("#")]
    for row in csv.reader(lines, delimiter="\t"):
        model, weights, hw, params, macs = row[:5]
        if weights == "IMAGENET1K_V1":
            rows[model] = {"input_hw": int(hw), "params": int(params), "macs": int(macs)}
    return rows


def torch_namespace() -> dict[str, Any]:
    import torch
    import torchvision
    from torch import nn

    return {"nn": nn, "torch": torch, "StochasticDepth": torchvision.ops.StochasticDepth}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite the golden files of generated source"
    )


@pytest.fixture(scope="session")
def reference() -> dict[str, dict[str, int]]:
    if not REFERENCE.exists():
        pytest.fail(f"reference figures not found at {REFERENCE}")
    return reference_rows()


def assert_same_layout(model: Any, module: Any, prefix: str = "") -> None:
    """Every torch parameter belongs to the spec node of the same dotted name, and each node's
    parameter count equals the sum of the torch parameters it owns."""
    ours = {layer.name: layer.params for layer in model.layers if layer.params}
    theirs: dict[str, int] = {}
    for key, param in module.named_parameters():
        parts = (prefix + key).split(".")
        owner = next(
            (".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in ours),
            None,
        )
        assert owner is not None, f"no spec node owns torch parameter {prefix + key}"
        theirs[owner] = theirs.get(owner, 0) + param.numel()
    assert theirs == ours
