"""Forward time and throughput of the TransformerScoreNet presets on this machine.

Prints a markdown table (median of `--repeats` timed forwards after one warm-up, inference mode):

    .venv/bin/python benchmarks/nets_forward.py [--threads 2] [--repeats 3] [--length 256]

Rows: "tiny" with a DNA-sized absorbing vocabulary (4 + MASK) and with GPT-2's (50,257 + MASK),
"small" (SEDD-small) with GPT-2's at batch 1 and 8; each in float32 and under bf16 autocast. The
numbers depend on the CPU and on whatever else runs on it: the header prints the load average.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch
from _harness import machine  # benchmarks/ is the script's directory, hence on sys.path

from ddiff import AbsorbingGraph
from ddiff.nets import ScaledAbsorbingParameterization, TransformerScoreNet

GPT2_TOKENS = 50_257
DNA_TOKENS = 4


def time_forward(
    net: TransformerScoreNet,
    batch: int,
    length: int,
    bf16: bool,
    repeats: int,
) -> float:
    """Median wall time (s) of one forward pass."""
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randint(0, net.num_states, (batch, length), generator=gen)
    sigma = torch.rand(batch, generator=gen) * 5.0 + 1e-3
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    times = []
    with torch.inference_mode(), autocast:
        net(x_t, sigma)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            net(x_t, sigma)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--length", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"{machine()}, L = {args.length}\n")
    print("| preset | S | non-emb. params | batch | dtype | forward (ms) | tokens/s |")
    print("|---|---:|---:|---:|---|---:|---:|")

    rows = [("tiny", DNA_TOKENS, [8]), ("tiny", GPT2_TOKENS, [8]), ("small", GPT2_TOKENS, [1, 8])]
    for preset, num_tokens, batches in rows:
        graph = AbsorbingGraph(num_tokens)
        torch.manual_seed(0)
        net = TransformerScoreNet.from_preset(
            preset, graph.num_states, parameterization=ScaledAbsorbingParameterization(graph)
        ).eval()
        for batch in batches:
            for bf16 in (False, True):
                seconds = time_forward(net, batch, args.length, bf16, args.repeats)
                print(
                    f"| {preset} | {graph.num_states:,} | {net.num_parameters() / 1e6:.1f}M | "
                    f"{batch} | {'bf16 autocast' if bf16 else 'float32'} | "
                    f"{seconds * 1e3:,.1f} | {batch * args.length / seconds:,.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
