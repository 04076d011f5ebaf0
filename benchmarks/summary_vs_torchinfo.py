"""cnngraph summary vs torchinfo's summary of the same torchvision model, side by side.

    python benchmarks/summary_vs_torchinfo.py [--runs 5] [--model resnet50 --spec specs/resnet.yaml]

ResNet-50 and EfficientNet-B0 unless --model says otherwise.

Two views, both medians of --runs alternating runs:
- process: a fresh interpreter per run, as a user waits for it (wall time, peak RSS);
- in-process: imports done, the work alone (cnngraph: compile + summary text with the valid
  input sizes; torchinfo: build the torchvision model + summary).
Timing is noisy on shared machines: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from processes import ROOT, prepare, run_process

TORCHINFO_SCRIPT = """
import torchinfo, torchvision
model = torchvision.models.{model}()
stats = torchinfo.summary(model, input_size=(1, 3, {hw}, {hw}), verbose=0)
print(stats.total_params, stats.total_mult_adds)
"""


def in_process(spec: Path, model_name: str, hw: int, runs: int) -> tuple[float, float]:
    import torchinfo
    import torchvision

    import cnngraph

    ours, theirs = [], []
    for _ in range(runs):
        start = time.perf_counter()
        cnngraph.load(spec).summary()
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        network = getattr(torchvision.models, model_name)()
        torchinfo.summary(network, input_size=(1, 3, hw, hw), verbose=0)
        theirs.append(time.perf_counter() - start)
    return statistics.median(ours), statistics.median(theirs)


MODELS = {"resnet50": "specs/resnet.yaml", "efficientnet_b0": "specs/efficientnet.yaml"}


def processes(model_name: str, spec: Path, hw: int, runs: int, env: dict[str, str]) -> Any:
    """Medians of fresh processes: wall seconds and peak RSS, ours and theirs, and torchinfo's
    printed figures."""
    ours_cmd = [sys.executable, "-m", "cnngraph", "summary", str(spec)]
    theirs_cmd = [sys.executable, "-c", TORCHINFO_SCRIPT.format(model=model_name, hw=hw)]
    ours_t, ours_m, theirs_t, theirs_m = [], [], [], []
    theirs_out = ""
    for _ in range(runs):
        t, m, _ = run_process(ours_cmd, env)
        ours_t.append(t)
        ours_m.append(m)
        t, m, theirs_out = run_process(theirs_cmd, env)
        theirs_t.append(t)
        theirs_m.append(m)
    medians = [statistics.median(x) for x in (ours_t, ours_m, theirs_t, theirs_m)]
    return medians, theirs_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--model", action="append", help=f"torchvision's name (default: {', '.join(MODELS)})"
    )
    parser.add_argument("--spec", help="the spec for a single --model")
    args = parser.parse_args()
    env = prepare()
    names = args.model or list(MODELS)
    import cnngraph

    specs = {
        name: Path(args.spec) if args.spec and len(names) == 1 else ROOT / MODELS[name]
        for name in names
    }
    compiled = {name: cnngraph.load(spec) for name, spec in specs.items()}
    # Every process first: a child forked after torch is imported here counts the parent's
    # memory in its peak RSS.
    measured = {
        name: processes(name, specs[name], compiled[name].input_shape[1], args.runs, env)
        for name in names
    }
    for name in names:
        (ours_t, ours_m, theirs_t, theirs_m), theirs_out = measured[name]
        model = compiled[name]
        in_ours, in_theirs = in_process(specs[name], name, model.input_shape[1], args.runs)
        params, mult_adds = (int(x) for x in theirs_out.split())
        print(f"{name}, {args.runs} runs each, medians; machine: {os.cpu_count()} CPUs")
        print(f"  cnngraph : {model.params:,} params, {model.macs:,} MACs")
        print(f"  torchinfo: {params:,} params, {mult_adds:,} mult-adds (its own convention)")
        rows = [
            ("process wall time (s)", ours_t, theirs_t),
            ("process peak RSS (MiB)", ours_m, theirs_m),
            ("in-process time (ms)", in_ours * 1e3, in_theirs * 1e3),
        ]
        print(f"  {'':24}{'cnngraph':>12}{'torchinfo':>12}{'ratio':>10}")
        for label, ours, theirs in rows:
            print(f"  {label:24}{ours:12.3f}{theirs:12.3f}{theirs / ours:9.1f}x")


if __name__ == "__main__":
    main()
