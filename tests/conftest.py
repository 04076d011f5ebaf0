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


@pytest.fixture(scope="session")
def reference() -> dict[str, dict[str, int]]:
    if not REFERENCE.exists():
        pytest.fail(f"reference figures not found at {REFERENCE}")
    return reference_rows()
