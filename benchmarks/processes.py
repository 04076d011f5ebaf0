"""Child processes for the side-by-side benchmarks, run as an installed package runs.

`pip install` compiles every module to bytecode; an editable checkout under
PYTHONDONTWRITEBYTECODE (set on some CI machines) would compile cnngraph's sources on every
start instead, about 60 ms that no user pays. So the sources are compiled once here, and the
children may read and write bytecode, as torch's and torchvision's installed modules do.
"""

from __future__ import annotations

import compileall
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prepare() -> dict[str, str]:
    """Compile cnngraph to bytecode; the environment the children run in."""
    compileall.compile_dir(ROOT / "cnngraph", quiet=1)
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_process(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB, and stdout of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env
    )
    out = child.stdout.read().decode() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        err = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"{argv[:4]} failed:\n{err}")
    return elapsed, usage.ru_maxrss / 1024, out  # ru_maxrss is in KiB on Linux
