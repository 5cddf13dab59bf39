"""Table 5: peak memory of a loss call and of a sampling step with S = 50,257 (GPT-2 vocabulary).

Each measurement runs in a fresh process: the inputs (tokens and a `[B, L, S]` float32 log-score
tensor standing in for the network's output) are allocated first, the resident set size (RSS)
is read, then the measured call runs once, and the peak RSS of the process (`ru_maxrss`) minus
the RSS before the call is the call's peak extra memory. It is reported in MB and as a multiple
of one `[B, L, S]` float32 tensor (the network's output itself, which is not counted).

- **loss**: `denoising_score_entropy(graph, log_score, x_t, x_0, sigma)` summed (forward only);
- **loss + backward**: the same and `.backward()` into the log-score tensor (training);
- **sampler (1 step)**: `sampler.run(score_fn, B, L, steps=1)` with a score function that
  returns the precomputed log-scores: one reverse step and the final denoise step.

    .venv/bin/python benchmarks/memory.py                 # B = 8, L = 128
    .venv/bin/python benchmarks/memory.py --batch 2 --length 64
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

S = 50_257
WHAT = ("loss", "loss + backward", "euler", "tau-leaping", "analytic")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(what: str, graph_kind: str, batch: int, length: int) -> dict[str, Any]:
    import torch

    from ddiff import AbsorbingGraph, LogLinearSchedule, UniformGraph
    from ddiff.losses import denoising_score_entropy
    from ddiff.samplers import AnalyticSampler, EulerSampler, TauLeapingSampler

    torch.set_num_threads(1)
    graph = UniformGraph(S) if graph_kind == "uniform" else AbsorbingGraph(S - 1)
    g = torch.Generator().manual_seed(0)
    x_0 = torch.randint(graph.num_tokens, (batch, length), generator=g)
    sigma = torch.full((batch, 1), 1.0)
    x_t = graph.sample_transition(x_0, sigma, g) if hasattr(graph, "sample_transition") else x_0
    log_score = torch.randn(batch, length, graph.num_states, generator=g) - 4.0
    log_score.requires_grad_(what == "loss + backward")
    schedule = LogLinearSchedule(survival=0.0 if graph_kind == "absorbing" else 1e-3)
    samplers = {
        "euler": EulerSampler,
        "tau-leaping": TauLeapingSampler,
        "analytic": AnalyticSampler,
    }
    before = _rss_mb()
    if what in ("loss", "loss + backward"):
        loss = denoising_score_entropy(graph, log_score, x_t, x_0, sigma).sum()
        if what == "loss + backward":
            loss.backward()
    else:
        fixed = log_score.detach()

        def score_fn(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return fixed

        sampler = samplers[what](graph, schedule)
        with torch.no_grad():
            sampler.run(score_fn, batch, length, 1, generator=g)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tensor_mb = batch * length * graph.num_states * 4 / 2**20
    return {
        "what": what,
        "graph": graph_kind,
        "peak_extra_mb": peak - before,
        "tensor_mb": tensor_mb,
        "multiple": (peak - before) / tensor_mb,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.batch, args.length)))
        return 0
    import _harness as h

    rows = []
    for graph_kind in ("uniform", "absorbing"):
        for what in WHAT:
            command = [sys.executable, __file__, "--child", what, graph_kind]
            command += ["--batch", str(args.batch), "--length", str(args.length)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return done.returncode
            r = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append([graph_kind, what, f"{r['peak_extra_mb']:,.0f}", f"{r['multiple']:.1f}x"])
    print(
        f"{h.machine(threads=1)}; B = {args.batch}, L = {args.length}, S = {S:,}; one [B, L, S] float32 "
        f"tensor = {args.batch * args.length * S * 4 / 2**20:,.0f} MB\n"
    )
    header = ["graph", "call", "peak extra memory (MB)", "in [B, L, S] float32 tensors"]
    print(h.markdown_table(header, rows, right=lambda i: i > 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
