"""Where `ConvScoreNet` applies its GELU: speed against bit-for-bit reproducibility.

`_ConvBlock` convolves in the [B, C, L] layout and keeps its residual stream in [B, L, C]; the
library applies the GELU to the transposed (non-contiguous) view of the convolution's output.
Applying it before transposing back, over the convolution's own contiguous output, is faster
on CPU (the GELU's backward over the transposed view is several times slower), but the values
are not bit for bit the same: activations agree to about 1e-6 and gradients to about 1e-5
relative. Over thousands of training steps that moves results in their last digits, and the
seed-sensitive cells of the labelled DNA demo (docs/recipes/dna.md) moved by more, so the
library keeps the transposed layout. This times forward + backward of the DNA recipe's default
network (`ConvScoreNet`, width 64, 3 blocks, kernel 5, absorbing DNA vocabulary) on batches of
32 x 150 tokens in both layouts, interleaved so that load on the machine affects both alike,
and prints the largest differences of outputs and gradients:

    .venv/bin/python benchmarks/conv_layout.py [--repeats 5] [--steps 20] [--threads 1]

`--compile` also times the library's network under `torch.compile` (inductor, CPU): the time of
the first compiled forward + backward (the compilation, with whatever the on-disk cache holds)
and the compiled steps after it, measured after the eager ones (not interleaved: once inductor
has run in a process, the eager steps in it were measured slower).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from _harness import machine  # benchmarks/ is the script's directory, hence on sys.path
from torch import Tensor

from ddiff import AbsorbingGraph
from ddiff.nets import ConvScoreNet, ScaledAbsorbingParameterization
from ddiff.nets.conv import _ConvBlock
from ddiff.nets.transformer import _modulate


def _contiguous_forward(self: _ConvBlock, h: Tensor, c: Tensor) -> Tensor:
    """The faster alternative: GELU over the convolution's own contiguous output."""
    shift, scale, gate = self.modulation(c)[:, None].chunk(3, -1)
    x = _modulate(self.norm(h), shift, scale)
    x = F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)
    return h + gate * self.project(x)


@contextmanager
def contiguous_gelu() -> Iterator[None]:
    original = _ConvBlock.forward
    _ConvBlock.forward = _contiguous_forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        _ConvBlock.forward = original  # type: ignore[method-assign]


def step(net: ConvScoreNet, x: Tensor, sigma: Tensor) -> list[Tensor]:
    net.zero_grad(set_to_none=True)
    net(x, sigma).clamp(min=-30).exp().sum().backward()
    return [p.grad.clone() for p in net.parameters() if p.grad is not None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    graph = AbsorbingGraph(4)
    net = ConvScoreNet(
        graph.num_states,
        150,
        depth=3,
        parameterization=ScaledAbsorbingParameterization(graph),
    )
    for block in net.blocks:  # away from the zero-initialised identity, so every path counts
        torch.nn.init.normal_(block.modulation.weight, std=0.05)
    x = torch.randint(0, graph.num_states, (32, 150))
    sigma = torch.rand(32) * 3
    with torch.no_grad():
        library_out = net(x, sigma)
        with contiguous_gelu():
            contiguous_out = net(x, sigma)
    library = step(net, x, sigma)
    with contiguous_gelu():
        contiguous = step(net, x, sigma)
    same = all(torch.equal(a, b) for a, b in zip(library, contiguous, strict=True))
    worst = max(
        float(((a - b).abs() / b.abs().clamp(min=1e-30)).max())
        for a, b in zip(library, contiguous, strict=True)
    )
    times: dict[str, list[float]] = {"transposed": [], "contiguous": []}

    def timed(model: Any) -> float:
        start = time.perf_counter()
        for _ in range(args.steps):
            step(model, x, sigma)
        return (time.perf_counter() - start) / args.steps * 1000

    for _ in range(args.repeats):
        times["transposed"].append(timed(net))
        with contiguous_gelu():
            times["contiguous"].append(timed(net))
    first_compiled = None
    if args.compile:
        # After the eager rounds: once inductor has run in a process, eager steps here were
        # measured slower, so the two are not interleaved.
        compiled = torch.compile(net)
        start = time.perf_counter()
        step(compiled, x, sigma)  # type: ignore[arg-type]
        first_compiled = time.perf_counter() - start
        times["compiled"] = [timed(compiled) for _ in range(args.repeats)]
    print(machine())
    print(
        f"outputs identical: {torch.equal(library_out, contiguous_out)} (largest difference "
        f"{float((library_out - contiguous_out).abs().max()):.1e}); gradients identical: {same} "
        f"(largest relative difference {worst:.1e})"
    )
    if first_compiled is not None:
        print(f"first compiled forward + backward: {first_compiled:.1f} s")
    for name, values in times.items():
        print(f"GELU {name:>10}: {statistics.median(values):6.1f} ms per forward + backward")
    ratio = statistics.median(times["transposed"]) / statistics.median(times["contiguous"])
    print(f"ratio (transposed, the library's / contiguous): {ratio:.2f}")
    if "compiled" in times:
        ratio = statistics.median(times["transposed"]) / statistics.median(times["compiled"])
        print(f"ratio (eager / compiled): {ratio:.2f}")


if __name__ == "__main__":
    main()
