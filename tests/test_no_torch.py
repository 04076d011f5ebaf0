"""`import cnngraph`, validate, summary, build and render work without importing torch."""

from __future__ import annotations

import subprocess
import sys

from .conftest import SPECS

SCRIPT = f"""
import sys
import cnngraph
from cnngraph.cli import main
model = cnngraph.load({str(SPECS / "googlenet.yaml")!r})
model.summary()
model.to_dict()
model.input_size_rules
assert main(["validate", {str(SPECS)!r}]) == 0
assert main(["summary", {str(SPECS / "resnet.yaml")!r}, "--json"]) == 0
assert main(["schema"]) == 0
assert main(["build", {str(SPECS / "googlenet.yaml")!r}]) == 0
assert model.torch_source()
assert model.to_dot(depth=1).startswith("digraph")
print("torch imported:", "torch" in sys.modules)
"""


def test_core_paths_do_not_import_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().endswith("torch imported: False")
