"""Static analysis at scale: every spec's compile + summary, and growth with depth.

    python benchmarks/static_analysis.py [--runs 9] [--depths 125,250,500]

- every spec in specs/ at its defaults: `cnngraph.load(spec).summary()` (with the valid input
  sizes), median and the slowest of --runs, in ms;
- the valid input sizes alone, derived from the ops' size maps and tried size by size;
- specs/resnet.yaml with `layers: [n, n, n, n]` (about 44 layers per n): load and summary
  seconds, and the cost of each doubling (linear time costs 2x).
Timing is noisy on shared machines: read the medians and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

from processes import ROOT

import cnngraph
from cnngraph.passes.sizes import describe, input_size_rules


def timed(work: object) -> float:
    start = time.perf_counter()
    work()  # type: ignore[operator]
    return time.perf_counter() - start


def per_spec(runs: int) -> None:
    print(f"every spec, load + summary, {runs} runs (ms)")
    print(f"  {'spec':28}{'layers':>8}{'median':>9}{'slowest':>9}")
    worst = 0.0
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        times = [timed(lambda spec=spec: cnngraph.load(spec).summary()) for _ in range(runs)]
        layers = len(cnngraph.load(spec).layers)
        median = statistics.median(times) * 1e3
        worst = max(worst, median)
        print(f"  {spec.name:28}{layers:8}{median:9.1f}{max(times) * 1e3:9.1f}")
    print(f"  slowest median: {worst:.1f} ms")


def size_rules(runs: int) -> None:
    """The valid input sizes of each spec, derived from the ops' size maps and by trying
    sizes (the scan the derivation replaces where it can), both on the same compiled model."""
    print(f"\nvalid input sizes, derived vs tried, {runs} runs, medians (ms)")
    print(f"  {'spec':28}{'derived':>9}{'tried':>9}{'ratio':>8}  rule")
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        model = cnngraph.load(spec)
        if len(model.input_shape) != 3:
            continue
        times = {}
        for derive in (True, False):
            # a fresh inference each run: its lookups would answer the later runs
            samples = []
            for _ in range(runs):
                inference = cnngraph.load(spec)._eval_inference
                samples.append(
                    timed(
                        lambda i=inference, d=derive, s=model.input_shape: input_size_rules(i, s, d)
                    )
                )
            times[derive] = statistics.median(samples) * 1e3
        rule = input_size_rules(model._eval_inference, model.input_shape)
        ratio = times[False] / times[True]
        print(
            f"  {spec.name:28}{times[True]:9.2f}{times[False]:9.2f}{ratio:7.1f}x  {describe(rule)}"
        )


def by_depth(depths: list[int], runs: int) -> None:
    print(f"\nspecs/resnet.yaml, layers [n]*4, medians of {runs}")
    print(f"  {'n':>5}{'layers':>8}{'load s':>9}{'summary s':>11}{'total s':>9}{'x prev':>8}")
    previous = None
    for n in depths:
        loads, summaries = [], []
        for _ in range(runs):
            start = time.perf_counter()
            model = cnngraph.load(ROOT / "specs" / "resnet.yaml", params={"layers": [n] * 4})
            loads.append(time.perf_counter() - start)
            summaries.append(timed(model.summary))
        load, summary = statistics.median(loads), statistics.median(summaries)
        total = load + summary
        growth = f"{total / previous:8.2f}" if previous else ""
        print(f"  {n:5}{len(model.layers):8}{load:9.3f}{summary:11.3f}{total:9.3f}{growth}")
        previous = total


def calibration() -> float:
    """Seconds for a fixed pure-Python loop (best of 3): how fast this machine is right now,
    to read the milliseconds above against (shared machines vary by 2x within minutes)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--depths", default="125,250,500")
    args = parser.parse_args()
    print(f"calibration loop: {calibration() * 1e3:.0f} ms\n")
    per_spec(args.runs)
    size_rules(args.runs)
    by_depth([int(d) for d in args.depths.split(",")], max(3, args.runs // 3))
    print(f"\ncalibration loop: {calibration() * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
