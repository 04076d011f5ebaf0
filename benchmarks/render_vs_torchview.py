"""cnngraph render vs torchview's draw_graph, GoogLeNet to SVG, side by side in fresh processes.

    python benchmarks/render_vs_torchview.py [--runs 3]

Both render with the same Graphviz: `dot` on PATH, else graphviz-pure under that name. Wall
time and peak RSS per process, medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from processes import prepare, run_process

TORCHVIEW = """
import sys, torchvision, torchview
net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
graph = torchview.draw_graph(net, input_size=(1, 3, 224, 224), depth=3)
graph.visual_graph.render(sys.argv[1], format="svg", cleanup=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp())
    ours_cmd = [
        sys.executable,
        "-m",
        "cnngraph",
        "render",
        "specs/googlenet.yaml",
        "-o",
        str(out / "ours.svg"),
    ]
    theirs_cmd = [sys.executable, "-c", TORCHVIEW, str(out / "theirs")]
    env = prepare()
    engine = shutil.which("dot") or shutil.which(
        "graphviz-pure", path=str(Path(sys.executable).parent)
    )
    if engine is None:
        raise SystemExit("no Graphviz: install graphviz or graphviz-pure")
    if Path(engine).name != "dot":  # torchview runs `dot`: the same engine under that name
        (out / "bin").mkdir()
        (out / "bin" / "dot").symlink_to(engine)
        env["PATH"] = f"{out / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    print(f"engine: {engine}")
    ours, theirs = [], []
    for _ in range(args.runs):
        ours.append(run_process(ours_cmd, env)[:2])
        theirs.append(run_process(theirs_cmd, env)[:2])
    t_ours, t_theirs = (statistics.median(t for t, _ in r) for r in (ours, theirs))
    m_ours, m_theirs = (statistics.median(m for _, m in r) for r in (ours, theirs))
    print(f"googlenet to SVG, {args.runs} runs each, medians")
    print(f"  {'':20}{'cnngraph':>10}{'torchview':>11}{'ratio':>8}")
    print(f"  {'wall time (s)':20}{t_ours:10.2f}{t_theirs:11.2f}{t_theirs / t_ours:7.1f}x")
    print(f"  {'peak RSS (MiB)':20}{m_ours:10.0f}{m_theirs:11.0f}{m_theirs / m_ours:7.1f}x")


if __name__ == "__main__":
    main()
