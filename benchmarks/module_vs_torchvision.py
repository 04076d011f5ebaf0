"""The generated torch module vs torchvision's, side by side: forward latency and construction.

    python benchmarks/module_vs_torchvision.py [--model resnet50] [--spec specs/resnet.yaml]
        [--runs 15]

Both models hold the same weights (torchvision's state_dict, loaded strictly), run on the CPU
in eval mode under torch.inference_mode, alternating run by run; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision

import cnngraph

ROOT = Path(__file__).resolve().parents[1]


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", help="torchvision's name for it")
    parser.add_argument("--spec", default=str(ROOT / "specs" / "resnet.yaml"))
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = cnngraph.load(args.spec)
    namespace: dict[str, object] = {}
    exec(compile(model.torch_source(), "<generated>", "exec"), namespace)
    generated_class = namespace[type(model.to_module()).__name__]
    reference_factory = getattr(torchvision.models, args.model)

    ours = generated_class().eval()  # type: ignore[operator]
    theirs = reference_factory(weights=None).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)

    rows = []
    for batch in (1, 16):
        x = torch.randn(batch, *model.input_shape)
        with torch.inference_mode():
            for _ in range(3):  # warm up both
                ours(x)
                theirs(x)
            a: list[float] = []
            b: list[float] = []
            for run in range(args.runs):  # ABBA order: neither model always goes first
                pair = [(a, ours), (b, theirs)]
                for times, net in pair if run % 2 == 0 else pair[::-1]:
                    times.append(median_ms(lambda net=net, x=x: net(x), 1))
            assert torch.equal(ours(x), theirs(x))
        rows.append((f"forward, batch {batch} (ms)", statistics.median(a), statistics.median(b)))

    runs = max(3, args.runs // 3)
    build_a, build_b = [], []
    for _ in range(runs):
        build_a.append(median_ms(generated_class, 1))  # type: ignore[arg-type]
        build_b.append(median_ms(reference_factory, 1))
    rows.append(("construction (ms)", statistics.median(build_a), statistics.median(build_b)))
    spec_to_module = median_ms(lambda: cnngraph.load(args.spec).to_module(), runs)

    print(
        f"{args.model}: generated module vs torchvision, CPU, {torch.get_num_threads()} "
        f"threads, medians of {args.runs} alternating runs"
    )
    print(f"  {'':28}{'generated':>11}{'torchvision':>13}{'ratio':>8}")
    for label, mine, reference in rows:
        print(f"  {label:28}{mine:11.2f}{reference:13.2f}{mine / reference:8.3f}")
    print(f"  spec -> module (compile, generate, build): {spec_to_module:.1f} ms")


if __name__ == "__main__":
    main()
