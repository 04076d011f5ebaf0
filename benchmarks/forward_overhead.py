"""Forward overhead of the generated modules against torchvision's, family by family.

    python benchmarks/forward_overhead.py [--rounds 31] [--only resnet50,googlenet]

Each generated module comes from the file `cnngraph build` writes for the family's spec at its
defaults, instantiated with the member's params (as a user would), and holds torchvision's
weights (loaded strictly; outputs are checked equal). Two settings:

- overhead: batch 1, a 32x32 input, one thread: launch-bound, so every extra Python call or
  module shows;
- 224: batch 1, 224x224, the machine's threads.

Models run alternately (ABBA) in eval mode under torch.inference_mode; each round times a block
of calls per model; the figures are medians over rounds, and the ratio is generated over
torchvision (below 1 is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torchvision

import cnngraph
from cnngraph.backends.pytorch import load_source
from cnngraph.backends.pytorch.runtime import camel
from cnngraph.backends.pytorch.writer import python_name

SPECS = Path(__file__).resolve().parents[1] / "specs"

# torchvision's name: (spec, params), one member of each torchvision family in the library
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet18": ("resnet.yaml", {"block": "basic", "layers": [2, 2, 2, 2]}),
    "resnet50": ("resnet.yaml", {}),
    "mobilenet_v2": ("mobilenet_v2.yaml", {}),
    "mobilenet_v3_large": ("mobilenet_v3.yaml", {}),
    "mobilenet_v3_small": ("mobilenet_v3.yaml", {"arch": "small"}),
    "efficientnet_b0": ("efficientnet.yaml", {}),
    "densenet121": ("densenet.yaml", {}),
    "googlenet": ("googlenet.yaml", {}),
    "regnet_x_400mf": ("anynet.yaml", {}),
}
TORCHVISION_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": False}}


def generated(spec: str, params: dict[str, Any]) -> torch.nn.Module:
    model = cnngraph.load(SPECS / spec)
    cls = getattr(load_source(model.torch_source(), model.name), camel(model.name))

    def as_tuple(value: Any) -> Any:
        return tuple(as_tuple(v) for v in value) if isinstance(value, list) else value

    module: torch.nn.Module = cls(**{python_name(k): as_tuple(v) for k, v in params.items()})
    return module.eval()


def per_call_ms(net: torch.nn.Module, x: torch.Tensor, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        net(x)
    return (time.perf_counter() - start) / calls * 1e3


def compare(
    ours: torch.nn.Module, theirs: torch.nn.Module, x: torch.Tensor, rounds: int
) -> tuple[float, float]:
    with torch.inference_mode():
        assert torch.equal(ours(x), theirs(x)), "outputs differ"
        probe = per_call_ms(theirs, x, 3)
        calls = max(1, int(20 / max(probe, 1e-3)))  # about 20 ms per block
        for net in (ours, theirs):  # warm up
            per_call_ms(net, x, calls)
        a: list[float] = []
        b: list[float] = []
        for r in range(rounds):
            pair = [(a, ours), (b, theirs)]
            for times, net in pair if r % 2 == 0 else pair[::-1]:
                times.append(per_call_ms(net, x, calls))
    return statistics.median(a), statistics.median(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--only", default="", help="comma-separated torchvision names")
    args = parser.parse_args()
    names = [n for n in FAMILIES if not args.only or n in args.only.split(",")]
    threads = torch.get_num_threads()
    print(f"medians of {args.rounds} alternating rounds; ratio = generated / torchvision")
    print(f"{'model':20}{'setting':>26}{'generated ms':>14}{'torchvision ms':>16}{'ratio':>8}")
    ratios: list[float] = []
    for name in names:
        spec, params = FAMILIES[name]
        torch.manual_seed(0)
        theirs = getattr(torchvision.models, name)(weights=None, **TORCHVISION_KWARGS.get(name, {}))
        theirs = theirs.eval()
        ours = generated(spec, params)
        ours.load_state_dict(theirs.state_dict(), strict=True)
        settings = [
            ("batch 1, 32x32, 1 thread", 1, torch.randn(1, 3, 32, 32)),
            (f"batch 1, 224x224, {threads} thr", threads, torch.randn(1, 3, 224, 224)),
        ]
        for label, n_threads, x in settings:
            torch.set_num_threads(n_threads)
            mine, reference = compare(ours, theirs, x, args.rounds)
            ratios.append(mine / reference)
            print(f"{name:20}{label:>26}{mine:14.3f}{reference:16.3f}{mine / reference:8.3f}")
        torch.set_num_threads(threads)
    print(f"median ratio {statistics.median(ratios):.3f}, worst {max(ratios):.3f}")


if __name__ == "__main__":
    main()
