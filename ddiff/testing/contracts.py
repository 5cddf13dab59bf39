"""The contracts of `Graph`, `NoiseSchedule`, `ScoreNet` and `Sampler`, as checks you can run.

ddiff's own test suite runs these functions over every shipped graph, schedule, network and
sampler; run them over yours from your own tests::

    from ddiff.testing import check_graph

    def test_my_graph():
        check_graph(MyGraph())

`check_graph`, `check_schedule`, `check_score_net` and `check_sampler` run a whole contract. Each
property also has a function of its own (`check_transition(graph, sigma)`,
`check_schedule_rate(schedule, times)`, ...), to run with hypothesis-drawn arguments or to see
which property fails. A failed property raises `AssertionError` with a message that names the
property, the member, its arguments and the worst entry; success is silent. The checks need only
torch (chi-square p-values come from `torch.special.gammaincc`) and are deterministic: every
random draw comes from a seeded `torch.Generator`.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from ddiff._checks import renamed_keywords
from ddiff.conditioning import Clamp, Condition
from ddiff.graphs import AbsorbingGraph, DenseGraph, Graph, UniformGraph
from ddiff.nets import ScoreNet
from ddiff.samplers import Sampler, SampleResult
from ddiff.schedules import LogLinearSchedule, Noise, NoiseSchedule
from ddiff.testing.oracle import ExactOracle

__all__ = [
    "EDGE_TIMES",
    "SamplerFactory",
    "ToyScore",
    "check_chapman_kolmogorov",
    "check_frozen_states",
    "check_generic_members",
    "check_graph",
    "check_graph_arguments",
    "check_limit",
    "check_rate_matrix",
    "check_reverse_rates",
    "check_sample_transition",
    "check_sampler",
    "check_sampler_all_fixed",
    "check_sampler_clamping",
    "check_sampler_determinism",
    "check_sampler_empty_condition",
    "check_sampler_exactness",
    "check_sampler_infill",
    "check_sampler_output",
    "check_sampler_run",
    "check_sampler_stateless",
    "check_schedule",
    "check_schedule_arguments",
    "check_schedule_dtypes",
    "check_schedule_ends",
    "check_schedule_inverse",
    "check_schedule_precision",
    "check_schedule_python_numbers",
    "check_schedule_rate",
    "check_schedule_total",
    "check_score_net",
    "check_score_net_arguments",
    "check_score_net_batch",
    "check_score_net_extreme_sigma",
    "check_score_net_output",
    "check_score_net_sigma",
    "check_staggered_score",
    "check_transition",
    "check_transition_batch",
    "invalid_score_net_inputs",
    "score_net_inputs",
    "tiny_graphs",
]

F64 = torch.float64
_BLP = ("batch", "position")  # axis names of [B, L, S] tensors, completed by the state axis


# == Graph ========================================================================================


def check_graph(
    graph: Graph,
    *,
    sigmas: Sequence[float] = (0.0, 1e-3, 0.1, 1.0, 10.0),
    atol: float = 1e-9,
    rtol: float = 1e-7,
    infinite_noise: bool = True,
    num_draws: int = 20_000,
    seed: int = 0,
) -> None:
    r"""Check the Graph contract (DESIGN.md section 3) against dense references in float64.

    Runs, in order (each is also a function of its own):

    - `check_rate_matrix`: `Q` is `[S, S]` and finite, off-diagonals $\ge 0$, columns sum to 0;
      `rates_out(x)` and `rates_in(x)` are the column `Q[:, x]` and the row `Q[x, :]`;
    - `check_transition` at each of `sigmas` (and at $\infty$ if `infinite_noise`):
      `transition`, `transition_in` and `kernel` equal `torch.linalg.matrix_exp(sigma Q)` (the
      limit distribution at $\infty$), columns sum to 1, one-hot at sigma 0, float32 path;
    - `check_transition_batch`: one sigma per sequence (`[B]`), and a 0-dim sigma;
    - `check_chapman_kolmogorov` for every pair of positive `sigmas`: $P(a + b) = P(a) P(b)$;
    - `check_limit`: $Q\pi = 0$, $\sum_i \pi_i = 1$, `sample_limit` frequencies;
    - `check_sample_transition` at each of `sigmas`: a chi-square test of `num_draws` draws
      per data token against the dense kernel;
    - `check_reverse_rates`, `check_frozen_states` and `check_staggered_score` (at the positive
      `sigmas`) against their dense definitions, and `check_generic_members`: every member
      equals the generic `Graph` default computed from `rate_matrix()` (what an O(S) override
      must satisfy);
    - `check_graph_arguments`: bad tokens and a badly shaped or negative sigma raise `ValueError`.

    The references are dense `S x S` matrices: check a small instance of your graph (S up to a
    few hundred).

    Args:
        graph: the graph to check.
        sigmas: total noise levels (finite, >= 0) to check the kernels at.
        atol: absolute tolerance of the float64 comparisons (and of the column sums of `Q`).
        rtol: relative tolerance of the float64 comparisons.
        infinite_noise: also require `transition(x, inf)` to be the limit distribution; pass
            False for a graph that does not support infinite noise.
        num_draws: draws per data token for the chi-square test of `sample_transition`.
        seed: seed of the random tokens, scores and draws.

    Raises:
        AssertionError: naming the property, the member, sigma and the worst entry.

    Example:
        >>> from ddiff import UniformGraph
        >>> from ddiff.testing import check_graph
        >>> check_graph(UniformGraph(3))  # passes silently
        >>> class Slow(UniformGraph):  # kernels at 90% of the noise level
        ...     def transition(self, x_0, sigma):
        ...         return super().transition(x_0, 0.9 * sigma)
        >>> check_graph(Slow(3))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        AssertionError: kernel check failed for Slow(num_tokens=3, num_states=3): transition(x_0, sigma=0.001) differs from matrix_exp(sigma Q)[:, x_0] by 6.66e-05 at [x_0=0, x_t=0] ...
    """
    sigmas = [float(s) for s in sigmas]
    if not all(math.isfinite(s) and s >= 0 for s in sigmas):
        raise ValueError(f"sigmas must be finite and >= 0, got {sigmas}")
    positive = [s for s in sigmas if s > 0]
    close = {"atol": atol, "rtol": rtol}
    check_rate_matrix(graph, **close)
    for sigma in [*sigmas, math.inf] if infinite_noise else sigmas:
        check_transition(graph, sigma, **close)
    if sigmas:
        check_transition_batch(graph, sigmas, seed=seed, **close)
    for i, a in enumerate(positive):
        for b in positive[i:]:
            check_chapman_kolmogorov(graph, a, b, **close)
    check_limit(graph, seed=seed)
    for sigma in sigmas:
        check_sample_transition(graph, sigma, num_draws=num_draws, seed=seed)
    check_reverse_rates(graph, seed=seed, **close)
    check_frozen_states(graph)
    for sigma in positive:
        check_staggered_score(graph, sigma, seed=seed, **close)
    for sigma in sigmas:
        check_generic_members(graph, sigma, seed=seed, **close)
    check_graph_arguments(graph)


def check_rate_matrix(graph: Graph, *, atol: float = 1e-9, rtol: float = 1e-7) -> None:
    """`1 <= num_tokens <= num_states`; `Q` is `[S, S]` float64, finite, off-diagonals >= 0,
    columns sum to 0 within `atol`; `rates_out(x)` is `Q[:, x]` and `rates_in(x)` is `Q[x, :]`,
    in the dtype asked for."""
    it = _Subject(graph, atol, rtol)
    n, s = graph.num_tokens, graph.num_states
    if not (_is_int(n) and _is_int(s) and 1 <= n <= s):
        raise it.fail("sizes", f"num_tokens = {n!r}, num_states = {s!r}; need 1 <= N <= S")
    q = graph.rate_matrix(F64)
    if not isinstance(q, Tensor) or tuple(q.shape) != (s, s) or q.dtype != F64:
        got = _describe(q)
        raise it.fail("rate matrix", f"rate_matrix(torch.float64) is {got}, not [{s}, {s}] float64")
    if not bool(q.isfinite().all()):
        j, i = _first(~q.isfinite())
        raise it.fail("rate matrix", f"Q[{j}, {i}] = {float(q[j, i])} is not finite")
    off = q - torch.diag(q.diagonal())
    if bool((off < 0).any()):
        j, i = _unravel(int(off.argmin()), off.shape)
        raise it.fail(
            "rate matrix",
            f"Q[{j}, {i}] = {float(q[j, i]):.3g} is negative; Q[j, i] is the rate of jumping "
            "from i to j and must be >= 0",
        )
    sums = q.sum(dim=0)
    k = int(sums.abs().argmax())
    if not float(sums[k].abs()) <= atol:
        raise it.fail(
            "rate matrix",
            f"column {k} of Q sums to {float(sums[k]):.3g}, not 0 (atol {atol:g}); Q[{k}, {k}] "
            f"must be minus the total rate out of state {k}",
        )
    x = torch.arange(s)[None, :]
    for member, expected, reference in (("rates_out", q.T, "Q[:, x]"), ("rates_in", q, "Q[x, :]")):
        rates = getattr(graph, member)
        it.close(member, f"{member}(x)", rates(x, dtype=F64)[0], reference, expected, ("x", "y"))
        if (dtype := rates(x, dtype=torch.float32).dtype) != torch.float32:
            raise it.fail(member, f"{member}(x, dtype=torch.float32) returned {dtype}")


def check_transition(graph: Graph, sigma: float, *, atol: float = 1e-9, rtol: float = 1e-7) -> None:
    """At total noise `sigma`, `transition`, `transition_in` and `kernel` equal
    `matrix_exp(sigma Q)` in float64 (at `sigma = inf`: the limit distribution, also through the
    generic `kernel` path), `transition` sums to 1 over `x_t` and is one-hot at `sigma = 0`, and a
    float32 `sigma` gives float32 probabilities within 2e-6 of the reference."""
    it, s = _Subject(graph, atol, rtol), graph.num_states
    ref, name = _reference_kernel(graph, sigma)  # ref[j, i] = P[j, i]
    x, sig, at = torch.arange(s)[None, :], torch.tensor([sigma], dtype=F64), f"sigma={sigma:g}"
    p = graph.transition(x, sig)
    if sigma == 0:
        eye = torch.eye(s, dtype=F64)
        it.close("one-hot at sigma 0", "transition(x_0, sigma=0)", p[0], "one-hot(x_0)", eye)
    it.close("kernel", f"transition(x_0, {at})", p[0], f"{name}[:, x_0]", ref.T, ("x_0", "x_t"))
    ones = torch.ones(s, dtype=F64)
    it.close("kernel", f"transition(x_0, {at}).sum(-1)", p[0].sum(-1), "1", ones, ("x_0",))
    p_in = graph.transition_in(x, sig)[0]
    it.close("kernel", f"transition_in(x, {at})", p_in, f"{name}[x, :]", ref, ("x", "x_0"))
    it.close("kernel", f"kernel({at})", graph.kernel(sig)[0], name, ref, ("x_t", "x_0"))
    if math.isinf(sigma):
        generic = Graph.transition(graph, x, sig)[0]  # through kernel(sigma)
        what = f"Graph.transition(graph, x_0, {at})"
        it.close("limit", what, generic, f"{name}[:, x_0]", ref.T, ("x_0", "x_t"))
    p32 = graph.transition(x, sig.float())
    if p32.dtype != torch.float32:
        raise it.fail("kernel", f"transition(x_0, sigma) returned {p32.dtype} for float32 sigma")
    what, reference = f"transition(x_0, {at}) in float32", f"{name}[:, x_0]"
    it.close("kernel", what, p32[0], reference, ref.T, ("x_0", "x_t"), atol=2e-6, rtol=1e-5)


def check_transition_batch(
    graph: Graph, sigmas: Sequence[float], *, seed: int = 0, atol: float = 1e-9, rtol: float = 1e-7
) -> None:
    """With one sigma per sequence (`[B]`, B = `len(sigmas)`), row b of `transition` and
    `transition_in` uses `sigmas[b]`; a 0-dim sigma applies to every sequence."""
    it, prop = _Subject(graph, atol, rtol), "sigma per sequence"
    sig = torch.tensor([float(v) for v in sigmas], dtype=F64)
    x = torch.randint(graph.num_states, (sig.shape[0], 4), generator=_generator(seed))
    out, out_in = graph.transition(x, sig), graph.transition_in(x, sig)
    for b in range(sig.shape[0]):
        ref, name = _reference_kernel(graph, float(sig[b]))
        at = f"[{b}] (sigma[{b}]={float(sig[b]):g})"
        axes = ("position", "x_t")
        it.close(prop, f"transition(x, sigma){at}", out[b], f"{name}[:, x[{b}]]", ref.T[x[b]], axes)
        axes = ("position", "x_0")
        it.close(
            prop, f"transition_in(x, sigma){at}", out_in[b], f"{name}[x[{b}], :]", ref[x[b]], axes
        )
    last = sig[-1]
    what = f"transition(x, sigma) with a 0-dim sigma = {float(last):g}"
    per_row = graph.transition(x, last.expand(sig.shape[0]))
    whole = graph.transition(x, last)
    it.close(prop, what, whole, "the same sigma per sequence", per_row, (*_BLP, "x_t"))


def check_chapman_kolmogorov(
    graph: Graph, a: float, b: float, *, atol: float = 1e-9, rtol: float = 1e-7
) -> None:
    """The kernels form a semigroup: `P(a + b) = P(a) P(b)`, with `P` read from `transition`."""
    x = torch.arange(graph.num_states)[None, :]

    def kernel(sigma: float) -> Tensor:
        return graph.transition(x, torch.tensor([sigma], dtype=F64))[0].T

    what, product = f"transition(sigma={a + b:g})", kernel(a) @ kernel(b)
    reference = f"transition(sigma={a:g}) @ transition(sigma={b:g})"
    it = _Subject(graph, atol, rtol)
    it.close("Chapman-Kolmogorov", what, kernel(a + b), reference, product, ("x_t", "x_0"))


def check_limit(
    graph: Graph, *, num_draws: int = 30_000, seed: int = 5, tolerance: float = 0.015
) -> None:
    """`limit_distribution()` is a distribution `[S]` with `Q pi = 0` (within 1e-10), and the
    frequencies of `num_draws` draws of `sample_limit` are within `tolerance` of it."""
    it, s = _Subject(graph), graph.num_states
    pi = graph.limit_distribution()
    if tuple(pi.shape) != (s,) or pi.dtype != F64:
        raise it.fail("limit", f"limit_distribution() is {_describe(pi)}, not [{s}] float64")
    if bool((pi < 0).any()) or not abs(float(pi.sum()) - 1.0) < 1e-12:
        raise it.fail("limit", f"limit_distribution() = {pi.tolist()} is not a distribution")
    flow = graph.rate_matrix(F64) @ pi
    k = int(flow.abs().argmax())
    if not float(flow[k].abs()) < 1e-10:
        raise it.fail("limit", f"(Q pi)[{k}] = {float(flow[k]):.3g}: pi is not stationary")
    draws = graph.sample_limit((num_draws,), generator=_generator(seed))
    _check_draws(it, "limit", "sample_limit((num_draws,))", draws, (num_draws,), s)
    gap = torch.bincount(draws, minlength=s).double() / num_draws - pi
    k = int(gap.abs().argmax())
    if not float(gap[k].abs()) < tolerance:
        raise it.fail(
            "limit",
            f"state {k} has frequency {float(gap[k] + pi[k]):.4f} in {num_draws} draws of "
            f"sample_limit but probability {float(pi[k]):.4f} (tolerance {tolerance}, seed {seed})",
        )


def check_sample_transition(
    graph: Graph, sigma: float, *, num_draws: int = 20_000, seed: int = 1234, pvalue: float = 1e-4
) -> None:
    """`sample_transition` follows `matrix_exp(sigma Q)[:, x_0]`: of `num_draws` draws from each
    data token, none lands on a state of probability 0, and Pearson's chi-square p-value is
    above `pvalue` (cells expecting fewer than 5 draws are pooled, where the test holds)."""
    it, n, s = _Subject(graph), graph.num_tokens, graph.num_states
    ref, name = _reference_kernel(graph, sigma)
    # One sequence holding num_draws copies of every data token: one kernel, not one per draw.
    x_0 = torch.arange(n).repeat(num_draws)[None, :]
    draws = graph.sample_transition(x_0, torch.tensor([sigma], dtype=F64), _generator(seed))
    what = f"sample_transition(x_0, sigma={sigma:g})"
    _check_draws(it, "sampling", what, draws, tuple(x_0.shape), s)
    draws = draws.reshape(num_draws, n)
    for i in range(n):
        counts = torch.bincount(draws[:, i], minlength=s).double()
        probs = ref[:, i].clamp_min(0.0) / ref[:, i].clamp_min(0.0).sum()
        impossible = (probs < 1e-13) & (counts > 0)
        if bool(impossible.any()):
            j = int(impossible.nonzero()[0])
            raise it.fail(
                "sampling",
                f"{what} drew x_t = {j} from x_0 = {i} {int(counts[j])} times, but "
                f"{name}[{j}, {i}] = {float(ref[j, i]):.3g}",
            )
        p, j = _chi_square(counts, probs)
        if not p > pvalue:
            raise it.fail(
                "sampling",
                f"{what} from x_0 = {i}: chi-square p-value {p:.2g} < {pvalue:g} for {num_draws} "
                f"draws (seed {seed}); worst at x_t = {j}: {int(counts[j])} draws, "
                f"{float(probs[j]) * num_draws:.1f} expected from {name}",
            )


def check_reverse_rates(
    graph: Graph, *, seed: int = 3, atol: float = 1e-9, rtol: float = 1e-7
) -> None:
    """`reverse_rates(x, score)` is `score[y] * Q[x, y]` for `y != x` and minus their sum at
    `y = x` (rows sum to 0 within 1e-12), and leaves `score` as it was; with `scale` every rate
    is multiplied by it, and `out=score` (the samplers' in-place route) writes the same values
    into `score` and returns it."""
    it, gen = _Subject(graph, atol, rtol), _generator(seed)
    x = torch.randint(graph.num_states, (2, 5), generator=gen)
    score = torch.rand(2, 5, graph.num_states, generator=gen, dtype=F64) * 3
    before = score.clone()
    out = graph.reverse_rates(x, score)
    index = x.unsqueeze(-1)
    off = (score * graph.rate_matrix(F64)[x]).scatter(-1, index, 0.0)  # score_y Q[x, y]
    expected = off.scatter(-1, index, -off.sum(-1, keepdim=True))
    reference = "score[y] * Q[x, y] (y != x), minus their sum at y = x"
    it.close("reverse rates", "reverse_rates(x, score)", out, reference, expected, (*_BLP, "y"))
    zeros = torch.zeros(2, 5, dtype=F64)
    what = "reverse_rates(x, score).sum(-1)"
    it.close("reverse rates", what, out.sum(-1), "0", zeros, _BLP, atol=1e-12, rtol=0.0)
    if not torch.equal(score, before):
        raise it.fail("reverse rates", "reverse_rates(x, score) modified score")
    what = "reverse_rates(x, score, scale=0.3, out=score)"
    in_place = graph.reverse_rates(x, score, scale=0.3, out=score)
    if in_place.data_ptr() != score.data_ptr():
        raise it.fail("reverse rates", f"{what} did not return score")
    it.close("reverse rates", what, in_place, f"0.3 * ({reference})", 0.3 * expected, (*_BLP, "y"))


def check_frozen_states(graph: Graph) -> None:
    """`frozen_states()` is a bool `[S]` marking exactly the states no other state jumps into:
    the rows of `Q` without a positive off-diagonal entry."""
    it = _Subject(graph)
    out = graph.frozen_states()
    if not isinstance(out, Tensor) or out.dtype != torch.bool or out.shape != (graph.num_states,):
        raise it.fail("frozen states", f"frozen_states() is {_describe(out)}, not [S] torch.bool")
    q = graph.rate_matrix(F64)
    expected = ~(q - torch.diag(torch.diagonal(q))).gt(0).any(dim=1)
    wrong = out.cpu() != expected
    if bool(wrong.any()):
        k = int(wrong.nonzero()[0])
        raise it.fail(
            "frozen states",
            f"frozen_states()[{k}] is {bool(out[k])}, but state {k} "
            f"{'receives no' if bool(expected[k]) else 'receives'} jumps from other states "
            "(row Q[x, :] off the diagonal)",
        )


@renamed_keywords(dsigma="delta_sigma")
def check_staggered_score(
    graph: Graph, delta_sigma: float, *, seed: int = 4, atol: float = 1e-9, rtol: float = 1e-7
) -> None:
    """`staggered_score(score, delta_sigma)` is `matrix_exp(-delta_sigma Q) @ score` per position,
    and leaves `score` as it was."""
    it = _Subject(graph, atol, rtol)
    score = torch.rand(3, 2, graph.num_states, generator=_generator(seed), dtype=F64)
    before = score.clone()
    inverse = torch.linalg.matrix_exp(-delta_sigma * graph.rate_matrix(F64))
    expected = torch.einsum("jk,blk->blj", inverse, score)
    out = graph.staggered_score(score, torch.full((3,), delta_sigma, dtype=F64))
    what = f"staggered_score(score, delta_sigma={delta_sigma:g})"
    reference = "matrix_exp(-delta_sigma Q) @ score"
    it.close("staggered score", what, out, reference, expected, (*_BLP, "y"))
    if not torch.equal(score, before):
        raise it.fail("staggered score", "staggered_score(score, delta_sigma) modified score")


def check_generic_members(
    graph: Graph, sigma: float, *, seed: int = 0, atol: float = 1e-9, rtol: float = 1e-7
) -> None:
    """Every member equals `Graph`'s generic default computed from `rate_matrix()` on random
    tokens `[3, 4]` (what the O(S) overrides of uniform and absorbing graphs must satisfy)."""
    it, gen = _Subject(graph, atol, rtol), _generator(seed)
    x = torch.randint(graph.num_states, (3, 4), generator=gen)
    sig = torch.full((3,), sigma, dtype=F64)
    score = torch.rand(3, 4, graph.num_states, generator=gen, dtype=F64)
    for member, args, what in [
        ("rates_out", (x,), "rates_out(x)"),
        ("rates_in", (x,), "rates_in(x)"),
        ("transition", (x, sig), f"transition(x, sigma={sigma:g})"),
        ("transition_in", (x, sig), f"transition_in(x, sigma={sigma:g})"),
        ("reverse_rates", (x, score), "reverse_rates(x, score)"),
        ("staggered_score", (score, sig), f"staggered_score(score, delta_sigma={sigma:g})"),
    ]:
        fast, generic = getattr(graph, member)(*args), getattr(Graph, member)(graph, *args)
        it.close("generic members", what, fast, f"Graph.{member}", generic, (*_BLP, "y"))
    frozen, generic_frozen = graph.frozen_states(), Graph.frozen_states(graph)
    if not torch.equal(frozen.cpu(), generic_frozen):
        raise it.fail(
            "generic members",
            f"frozen_states() = {frozen.tolist()} differs from Graph.frozen_states = "
            f"{generic_frozen.tolist()}",
        )
    pi, generic_pi = graph.limit_distribution(), Graph.limit_distribution(graph)
    what = "limit_distribution()"
    it.close("generic members", what, pi, "Graph.limit_distribution", generic_pi, ("x",), rtol=0.0)


def check_graph_arguments(graph: Graph) -> None:
    """Tokens outside `[0, S)` or not integers, and a sigma of the wrong shape or negative, raise
    `ValueError` with a message that says so."""
    it, s = _Subject(graph), graph.num_states
    x = torch.zeros(2, 3, dtype=torch.long)
    cases: list[tuple[str, Callable[[], object], str]] = [
        (f"transition(x = {s})", lambda: graph.transition(x + s, torch.ones(2)), "outside"),
        ("rates_in(x = -1)", lambda: graph.rates_in(x - 1), "outside"),
        ("transition(x [2, 3], sigma [3])", lambda: graph.transition(x, torch.ones(3)), r"shape \[batch\]"),
        ("transition(x, sigma = -1)", lambda: graph.transition(x, -torch.ones(2)), ">= 0"),
        ("rates_out(float x)", lambda: graph.rates_out(x.float()), "integer"),
    ]  # fmt: skip
    for what, call, match in cases:
        it.raises("argument errors", what, call, ValueError, match)


# == NoiseSchedule ================================================================================

EDGE_TIMES: tuple[float, ...] = (
    *(0.0, 1e-300, 1e-12, 1e-9, 1e-6, 1e-3, 0.5),
    *(1 - 1e-3, 1 - 1e-6, 1 - 1e-9, 1 - 1e-12, math.nextafter(1.0, 0.0), 1.0),
)
"""Times where cancellation bites: next to the data, next to the limit, and the ends."""


def check_schedule(schedule: NoiseSchedule) -> None:
    r"""Check the NoiseSchedule contract (`ddiff.schedules.NoiseSchedule`).

    Runs, in order (each is also a function of its own):

    - `check_schedule_ends`: `total(0) = total_min` (finite, $\ge 0$) and
      `total(1) = total_max` > `total_min` (may be `inf`);
    - `check_schedule_total` on a 4001-point grid and `EDGE_TIMES`, in float32 and float64:
      never NaN, non-decreasing, total and rate finite and $\ge 0$ below t = 1;
    - `check_schedule_rate`: `rate` is $d\bar\sigma/dt$ (by autograd, or by central finite
      differences if `total` is not differentiable by torch);
    - `check_schedule_inverse` in float64 and float32: `inverse(total(t)) = t`, the ends map to
      exactly 0 and 1, totals outside `[total_min, total_max]` raise `ValueError`;
    - `check_schedule_dtypes`, `check_schedule_python_numbers`, `check_schedule_precision`:
      outputs keep the shape and dtype of `t` (float16 to float64, 0-dim and empty), calling
      the schedule gives a `Noise`, Python numbers give default-dtype tensors, float32 is
      accurate next to the data;
    - `check_schedule_arguments`: times outside [0, 1] or NaN raise `ValueError` naming the value
      and index, complex times raise `TypeError` (as `NoiseSchedule._check_time` does).

    Args:
        schedule: the schedule to check.

    Raises:
        AssertionError: naming the property, the member and the worst time.

    Example:
        >>> from ddiff.schedules import LogLinearSchedule
        >>> from ddiff.testing import check_schedule
        >>> check_schedule(LogLinearSchedule())  # passes silently
        >>> class Fast(LogLinearSchedule):  # a rate that is not d total / dt
        ...     def _rate(self, t):
        ...         return 1.01 * super()._rate(t)
        >>> check_schedule(Fast())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        AssertionError: rate = d total/dt check failed for Fast(survival=0.001): rate(t) differs from d total/dt (autograd) by 0.909 at [t=0.99] ...
    """
    edges = torch.tensor(EDGE_TIMES, dtype=F64)
    check_schedule_ends(schedule)
    check_schedule_total(schedule, torch.cat([torch.linspace(0, 1, 4001, dtype=F64), edges]))
    check_schedule_rate(schedule, torch.linspace(0.01, 0.99, 99, dtype=F64))
    for dtype in (F64, torch.float32):
        times = torch.cat([edges, torch.linspace(0, 1, 201, dtype=F64)])
        check_schedule_inverse(schedule, times, dtype=dtype)
    check_schedule_dtypes(schedule)
    check_schedule_python_numbers(schedule)
    check_schedule_precision(schedule)
    check_schedule_arguments(schedule)


def check_schedule_ends(schedule: NoiseSchedule) -> None:
    """`total(0) == total_min` and `total(1) == total_max` in float64, with
    `0 <= total_min < total_max` and `total_min` finite."""
    it = _Subject(schedule)
    start, end = schedule.total(torch.tensor([0.0, 1.0], dtype=F64)).tolist()
    lo, hi = schedule.total_min, schedule.total_max
    if start != lo or end != hi:
        raise it.fail(
            "ends",
            f"total(0) = {start!r}, total(1) = {end!r}; total_min = {lo!r}, total_max = {hi!r}",
        )
    if not (math.isfinite(lo) and 0.0 <= lo < hi):
        raise it.fail("ends", f"need 0 <= total_min < total_max, total_min finite; got {lo}, {hi}")


def check_schedule_total(
    schedule: NoiseSchedule,
    times: Tensor | Sequence[float],
    *,
    dtypes: Iterable[torch.dtype] = (torch.float32, F64),
) -> None:
    """At `times` (converted to each of `dtypes`, sorted), `total` is never NaN and
    non-decreasing, and `total` and `rate` are finite and >= 0 below t = 1."""
    it = _Subject(schedule)
    for dtype in dtypes:
        t = torch.as_tensor(times, dtype=F64).to(dtype).flatten().sort().values
        total = schedule.total(t)
        if bool(total.isnan().any()):
            k = int(total.isnan().nonzero()[0])
            raise it.fail("monotone", f"total(t) is NaN at t = {float(t[k])!r} ({dtype})")
        down = total[1:] < total[:-1]  # not diff(): inf - inf is NaN
        if bool(down.any()):
            k = int(down.nonzero()[0])
            raise it.fail(
                "monotone",
                f"total(t) decreases from {float(total[k])!r} at t = {float(t[k])!r} to "
                f"{float(total[k + 1])!r} at t = {float(t[k + 1])!r} ({dtype})",
            )
        below = t < 1  # in float32, 1 - 1e-12 rounds to 1
        for name, values in (("total", total[below]), ("rate", schedule.rate(t)[below])):
            bad = ~(values.isfinite() & (values >= 0))
            if bool(bad.any()):
                k = int(bad.nonzero()[0])
                raise it.fail(
                    "finite and non-negative",
                    f"{name}(t) = {float(values[k])!r} at t = {float(t[below][k])!r} ({dtype})",
                )


def check_schedule_rate(
    schedule: NoiseSchedule, times: Tensor | Sequence[float], *, rtol: float = 1e-10
) -> None:
    """`rate(t)` equals `d total / dt` at `times` in float64 within `rtol`, by autograd; by central
    finite differences within `max(rtol, 1e-6)` if `total` is not differentiable by torch (then
    `times` must lie strictly inside (0, 1))."""
    t = torch.as_tensor(times, dtype=F64).flatten().clone().requires_grad_(True)
    try:
        total = schedule.total(t)
    except RuntimeError:  # e.g. a total computed with numpy refuses tensors that require grad
        total = t.detach()
    if total.requires_grad:
        (derivative,) = torch.autograd.grad(total.sum(), t)
        reference = "d total/dt (autograd)"
    t = t.detach()
    if not total.requires_grad:
        h = 1e-6 * torch.minimum(t, 1 - t).clamp_max(1.0)  # a central step inside [0, 1]
        derivative = (schedule.total(t + h) - schedule.total(t - h)) / (2 * h)
        reference, rtol = "d total/dt (central finite differences)", max(rtol, 1e-6)
    it, labels = _Subject(schedule, 0.0, rtol), [f"t={v:.6g}" for v in t.tolist()]
    it.close("rate = d total/dt", "rate(t)", schedule.rate(t), reference, derivative, labels=labels)


def check_schedule_inverse(
    schedule: NoiseSchedule, times: Tensor | Sequence[float], *, dtype: torch.dtype = F64
) -> None:
    """`inverse(total(t)) == t` at `times` in `dtype` (float64: rtol 1e-12, atol 1e-14; float32:
    rtol 1e-5, atol 1e-6); `inverse([total_min, total_max])` is exactly `[0, 1]`; a `sigma` below
    `total_min`, above a finite `total_max`, or NaN raises `ValueError`."""
    tolerances = {F64: (1e-14, 1e-12), torch.float32: (1e-6, 1e-5)}
    if dtype not in tolerances:
        raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
    it = _Subject(schedule, *tolerances[dtype])
    t = torch.as_tensor(times, dtype=F64).to(dtype).flatten()
    what, labels = f"inverse(total(t)) in {dtype}", [f"t={v:.6g}" for v in t.tolist()]
    it.close("inverse", what, schedule.inverse(schedule.total(t)), "t", t, labels=labels)
    lo, hi = schedule.total_min, schedule.total_max
    ends = schedule.inverse(torch.tensor([lo, hi], dtype=F64)).tolist()
    if ends != [0.0, 1.0]:
        raise it.fail("inverse", f"inverse([total_min, total_max]) = {ends}, not [0.0, 1.0]")
    for bad in [lo - max(1e-3, 1e-3 * lo), math.nan, *([hi * 1.001] if math.isfinite(hi) else [])]:
        call = functools.partial(schedule.inverse, torch.tensor([lo, bad], dtype=F64))
        match = r"sigma must lie in \[total_min, total_max\]"
        it.raises("inverse", f"inverse(sigma = {bad!r})", call, ValueError, match)


def check_schedule_dtypes(
    schedule: NoiseSchedule,
    *,
    dtypes: Iterable[torch.dtype] = (torch.float16, torch.bfloat16, torch.float32, F64),
    shapes: Iterable[tuple[int, ...]] = ((), (7,), (2, 3, 4), (0, 5)),
) -> None:
    """For random `t` of each dtype and shape (t = 0 and 1 included where there is room),
    `total`, `rate`, `inverse` and `schedule(t)` keep the shape and dtype of `t`, and `schedule(t)`
    is a `Noise` equal to `(total(t), rate(t))`."""
    it = _Subject(schedule)
    for dtype in dtypes:
        for shape in shapes:
            t = torch.rand(shape, dtype=F64, generator=_generator(0))
            if t.numel() >= 2:
                t.view(-1)[:2] = torch.tensor([0.0, 1.0])
            t = t.to(dtype)
            noise = schedule(t)
            if not isinstance(noise, Noise):
                raise it.fail(
                    "shape and dtype", f"schedule(t) is a {type(noise).__name__}, not Noise"
                )
            total, rate = schedule.total(t), schedule.rate(t)
            outputs = [total, rate, *noise, schedule.inverse(noise.sigma)]
            names = [
                "total(t)",
                "rate(t)",
                "schedule(t).sigma",
                "schedule(t).rate",
                "inverse(total(t))",
            ]
            for what, out in zip(names, outputs, strict=True):
                if tuple(out.shape) != tuple(shape) or out.dtype != dtype:
                    raise it.fail(
                        "shape and dtype",
                        f"{what} is {_describe(out)} for t of shape {list(shape)} {dtype}",
                    )
            for field, what, got, expected in (
                ("sigma", "total", noise.sigma, total),
                ("rate", "rate", noise.rate, rate),
            ):
                if not bool((got == expected).all()):
                    raise it.fail("shape and dtype", f"schedule(t).{field} != {what}(t) in {dtype}")


def check_schedule_python_numbers(schedule: NoiseSchedule) -> None:
    """A Python float `t` gives a 0-dim tensor in torch's default dtype, equal to the result for a
    tensor of that dtype; `inverse` takes Python floats too."""
    it, default = _Subject(schedule), torch.get_default_dtype()
    total = schedule.total(0.25)
    if not isinstance(total, Tensor) or total.dtype != default or total.shape != ():
        raise it.fail("Python numbers", f"total(0.25) is {_describe(total)}, not a 0-dim {default}")
    expected = float(schedule.total(torch.tensor(0.25, dtype=default)))
    if float(total) != expected:
        raise it.fail("Python numbers", f"total(0.25) = {float(total)!r} != {expected!r}")
    back = float(schedule.inverse(float(total)))
    if not abs(back - 0.25) <= 1e-5 * 0.25:
        raise it.fail("Python numbers", f"inverse(total(0.25)) = {back!r} for Python floats")


def check_schedule_precision(schedule: NoiseSchedule, *, t: float = 1e-6) -> None:
    """Next to the data (t = 1e-6), float32 `total` and `rate` agree with float64 within 1e-5."""
    it = _Subject(schedule, 0.0, 1e-5)
    for name in ("total", "rate"):
        fn = getattr(schedule, name)
        f32, f64 = fn(torch.tensor([t], dtype=torch.float32)), fn(torch.tensor([t], dtype=F64))
        it.close(
            "float32 precision", f"{name}(t) in float32", f32, "float64", f64, labels=[f"t={t:g}"]
        )


def check_schedule_arguments(
    schedule: NoiseSchedule,
    *,
    bad_times: Iterable[float] = (-1e-9, -0.5, 1.0 + 1e-9, 2.0, math.nan),
) -> None:
    """Each of `bad_times` (outside [0, 1], or NaN) makes `total`, `rate` and `schedule(t)` raise
    `ValueError` naming the value and its index; a complex `t` raises `TypeError`."""
    it, prop = _Subject(schedule), "argument errors"
    for bad in bad_times:
        t = torch.tensor([0.0, 0.5, bad], dtype=F64)
        shown = "nan" if math.isnan(bad) else re.escape(repr(bad))
        match = rf"t must lie in \[0, 1\].*{shown}"
        fns: dict[str, Callable[[Tensor | float], object]] = {
            "total": schedule.total, "rate": schedule.rate, "schedule": schedule
        }  # fmt: skip
        for name, fn in fns.items():
            what = f"{name}(t) with t[2] = {bad!r}"
            it.raises(prop, what, functools.partial(fn, t), ValueError, match + r" at index \(2,\)")
        what = f"total({bad!r})"
        it.raises(prop, what, functools.partial(schedule.total, bad), ValueError, match)
    complex_t = torch.zeros(2, dtype=torch.complex64)
    it.raises(
        prop,
        "total(complex t)",
        functools.partial(schedule.total, complex_t),
        TypeError,
        "real tensor",
    )


# == ScoreNet =====================================================================================


def check_score_net(net: ScoreNet, graph: Graph, *, seed: int = 0) -> None:
    r"""Check the ScoreNet contract (`ddiff.nets.ScoreNet`) for a network of `graph`'s states.

    In eval mode (the network's mode is restored afterwards), on random tokens of `graph` and
    random total noise:

    - `net.num_states == graph.num_states`;
    - `check_score_net_output` for `[batch, length]` = (1, 1), (1, 2), (3, 7), (2, 16):
      log-scores `[B, L, S]`, finite, exactly 0 at the current token;
    - `check_score_net_batch`: each sequence's output does not depend on the rest of the batch;
    - `check_score_net_sigma`: a 0-dim, `[B]` and `[B, 1]` sigma give the same output;
    - `check_score_net_extreme_sigma`: sigma 0, 1e-5, 20 and `inf` give finite outputs, 0 at the
      current token, and finite gradients (by `torch.autograd.grad`: no `.grad` is left behind);
    - `check_score_net_arguments`: malformed inputs raise `ValueError` (as
      `ScoreNet.check_inputs` does).

    Args:
        net: the network to check.
        graph: the graph it scores; its states are the network's vocabulary.
        seed: seed of the random inputs.

    Raises:
        AssertionError: naming the property and the worst entry.

    Example:
        >>> from ddiff import AbsorbingGraph, TransformerScoreNet
        >>> from ddiff.testing import check_score_net
        >>> graph = AbsorbingGraph(5)
        >>> check_score_net(TransformerScoreNet.from_preset("tiny", graph.num_states), graph)
    """
    if net.num_states != graph.num_states:
        raise _Subject(net).fail(
            "sizes", f"net.num_states = {net.num_states} but {graph!r} has {graph.num_states}"
        )
    s, training = graph.num_states, net.training
    net.eval()
    try:
        for batch, length in ((1, 1), (1, 2), (3, 7), (2, 16)):
            check_score_net_output(net, *score_net_inputs(s, batch, length, seed))
        check_score_net_batch(net, *score_net_inputs(s, 3, 9, seed))
        check_score_net_sigma(net, score_net_inputs(s, 2, 4, seed)[0])
        check_score_net_extreme_sigma(net, score_net_inputs(s, 4, 6, seed)[0])
        check_score_net_arguments(net)
    finally:
        net.train(training)


def score_net_inputs(
    num_states: int, batch: int, length: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Random tokens `[batch, length]` of `num_states` states and float32 sigma `[batch]` in
    `[1e-3, 3 + 1e-3)`, from a generator seeded with `seed`."""
    gen = _generator(seed)
    x_t = torch.randint(0, num_states, (batch, length), generator=gen)
    return x_t, torch.rand(batch, generator=gen) * 3.0 + 1e-3


def check_score_net_output(net: ScoreNet, x_t: Tensor, sigma: Tensor) -> Tensor:
    """`net(x_t, sigma)` is a floating `[B, L, S]` tensor, finite, and exactly 0 at `x_t`.

    Returns the output, for further checks.
    """
    it, out = _Subject(net), net(x_t, sigma)
    shape = [*x_t.shape, net.num_states]
    if not isinstance(out, Tensor) or list(out.shape) != shape or not out.is_floating_point():
        raise it.fail("output", f"net(x_t, sigma) is {_describe(out)}, not floating {shape}")
    values = out.detach()
    if not bool(values.isfinite().all()):
        b, i, v = _first(~values.isfinite())
        at = ", ".join(f"{s:g}" for s in sigma.reshape(-1).tolist())
        detail = f"net(x_t, sigma)[{b}, {i}, {v}] = {float(values[b, i, v])} for sigma [{at}]"
        raise it.fail("finite", detail)
    current = values.gather(-1, x_t.long().unsqueeze(-1)).squeeze(-1)
    if bool((current != 0).any()):
        b, i = _first(current != 0)
        raise it.fail(
            "zero at the current token",
            f"net(x_t, sigma)[{b}, {i}, {int(x_t[b, i])}] = {float(current[b, i]):.4g} at the "
            f"current token x_t[{b}, {i}]; a ScoreNet returns exactly 0 there",
        )
    return out


def check_score_net_batch(
    net: ScoreNet, x_t: Tensor, sigma: Tensor, *, atol: float = 1e-5, rtol: float = 1e-5
) -> None:
    """Each row of `net(x_t, sigma)` equals the network run on that sequence alone."""
    it, together = _Subject(net, atol, rtol), net(x_t, sigma)
    for b in range(x_t.shape[0]):
        alone = net(x_t[b : b + 1], sigma[b : b + 1])[0]
        what, reference = f"net(x_t, sigma)[{b}]", f"net(x_t[{b}:{b + 1}], sigma[{b}:{b + 1}])"
        it.close("batch independence", what, together[b], reference, alone, ("position", "state"))


def check_score_net_sigma(net: ScoreNet, x_t: Tensor, sigma: float = 0.7) -> None:
    """A 0-dim and a `[B, 1]` sigma give the output of the same sigma as `[B]`."""
    it, b = _Subject(net, 1e-5, 1.3e-6), x_t.shape[0]
    reference = net(x_t, torch.full((b,), sigma))
    for form, given in (("0-dim", torch.tensor(sigma)), ("[B, 1]", torch.full((b, 1), sigma))):
        what = f"net(x_t, sigma) with a {form} sigma = {sigma}"
        it.close("sigma forms", what, net(x_t, given), "sigma as [B]", reference, (*_BLP, "state"))


def check_score_net_extreme_sigma(net: ScoreNet, x_t: Tensor) -> None:
    """Sigma 0, 1e-5, 20 and `inf` (cycled over the batch) give finite outputs, 0 at the current
    token, and finite gradients for every parameter that gets one."""
    sigma = torch.tensor([0.0, 1e-5, 20.0, math.inf])[torch.arange(x_t.shape[0]) % 4]
    with torch.enable_grad():
        out = check_score_net_output(net, x_t, sigma)
        named = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
        if not named or not out.requires_grad:
            return
        grads = torch.autograd.grad(out.sum(), [p for _, p in named], allow_unused=True)
    for (name, _), grad in zip(named, grads, strict=True):
        if grad is not None and not bool(grad.isfinite().all()):
            detail = f"the gradient of {name} is not finite for sigma = {sigma.tolist()}"
            raise _Subject(net).fail("extreme sigma", detail)


def invalid_score_net_inputs(num_states: int) -> list[tuple[Tensor, Tensor, str]]:
    """Malformed `(x_t, sigma)` pairs and the regex their `ValueError` must match: wrong shapes,
    float or out-of-range tokens, a sigma of the wrong shape, negative or NaN."""
    s, long = num_states, torch.long
    return [
        (torch.zeros(4, dtype=long), torch.ones(1), r"shape \[batch, length\]"),
        (torch.zeros(1, 2, 3, dtype=long), torch.ones(1), r"shape \[batch, length\]"),
        (torch.zeros(1, 0, dtype=long), torch.ones(1), "length >= 1"),
        (torch.zeros(1, 3), torch.ones(1), "integer token ids"),
        (torch.tensor([[0, s]]), torch.ones(1), rf"token {s} at \[batch 0, position 1\]"),
        (torch.tensor([[-1, 0]]), torch.ones(1), "token -1"),
        (torch.zeros(2, 3, dtype=long), torch.ones(3), r"shape \[batch\] = \[2\]"),
        (torch.zeros(2, 3, dtype=long), torch.ones(2, 3), r"shape \[batch\]"),
        (torch.zeros(1, 3, dtype=long), torch.tensor([-1.0]), ">= 0"),
        (torch.zeros(1, 3, dtype=long), torch.tensor([math.nan]), ">= 0"),
    ]


def check_score_net_arguments(
    net: ScoreNet, cases: Iterable[tuple[Tensor, Tensor, str]] | None = None
) -> None:
    """Each malformed input of `cases` (default: `invalid_score_net_inputs`) raises a `ValueError`
    whose message matches the case's regex."""
    it = _Subject(net)
    for x_t, sigma, match in invalid_score_net_inputs(net.num_states) if cases is None else cases:
        what = f"net(x_t {list(x_t.shape)} {x_t.dtype}, sigma {sigma.tolist()})"
        it.raises("input validation", what, functools.partial(net, x_t, sigma), ValueError, match)


# == Sampler ======================================================================================

SamplerFactory = Callable[[Graph, NoiseSchedule], Sampler]
"""`(graph, schedule) -> Sampler`; every `Sampler` subclass is one."""


def tiny_graphs() -> dict[str, Graph]:
    """The graphs of 3 data tokens `check_sampler` builds a factory on: uniform, absorbing, and a
    dense non-reversible one (the generic `matrix_exp` path)."""
    q = torch.rand(3, 3, generator=_generator(3), dtype=F64) * 2
    q.fill_diagonal_(0.0)
    q.diagonal().sub_(q.sum(dim=0))
    return {"uniform": UniformGraph(3), "absorbing": AbsorbingGraph(3), "dense": DenseGraph(q)}


def check_sampler(
    sampler: Sampler | SamplerFactory,
    *,
    graphs: Iterable[Graph] | None = None,
    schedule: NoiseSchedule | None = None,
    steps: int = 128,
    num_samples: int = 10_000,
    tolerance: float = 0.04,
    seed: int = 0,
) -> None:
    r"""Check the Sampler contract (`ddiff.samplers.Sampler`) and its exactness with exact scores.

    `sampler` is a sampler on a tiny graph, or a factory `(graph, schedule) -> Sampler` (every
    `Sampler` subclass is one), built on each of `graphs` (default: `tiny_graphs()`, uniform,
    absorbing and dense with 3 data tokens) with `schedule` (default `LogLinearSchedule()`).
    Each sampler is checked with a cheap recording score function (`ToyScore`):

    - `check_sampler_output`, `check_sampler_run`: samples are data tokens `[B, L]`; `run`
      reports `steps + 1` score evaluations (with the denoise step) and its time grid;
    - `check_sampler_determinism`, `check_sampler_stateless`: a generator seed fixes the samples,
      and a call stores nothing on the sampler;
    - `check_sampler_all_fixed`, `check_sampler_empty_condition`, `check_sampler_clamping`:
      fixed positions hold their tokens in every score evaluation and in the result;

    and with the exact scores of `ExactOracle.random(graph, length, seed=1)`:

    - `check_sampler_exactness`: `num_samples` sequences of length 2 drawn in `steps` steps are
      within total-variation distance `tolerance` of the data distribution;
    - `check_sampler_infill`: with position 1 of 3 fixed, samples keep it and are within
      `tolerance` of the exact conditional distribution.

    The Monte Carlo floor of the distance is about 0.012 for 10,000 samples of 9 sequences. At
    128 steps the shipped samplers reach 0.004-0.026 (tau-leaping on the dense graph converges
    slowest), hence the default tolerance 0.04; a sampler that ignores the score is at 0.13-0.44.
    One sampler takes under a second of CPU time with the defaults (a factory, three).

    Args:
        sampler: a `Sampler` on a tiny graph (its S^3 sequences are enumerated), or a factory.
        graphs: the graphs a factory is built on.
        schedule: the schedule a factory is built with.
        steps: number of steps of the exactness and infill runs.
        num_samples: number of samples of the exactness and infill runs.
        tolerance: the largest total-variation distance accepted.
        seed: seed of the generators given to the sampler.

    Raises:
        AssertionError: naming the property and what was seen.
        ValueError: if the sampler's graph is too large to enumerate.

    Example:
        >>> from ddiff import AbsorbingGraph, AnalyticSampler
        >>> from ddiff.schedules import LogLinearSchedule
        >>> from ddiff.testing import check_sampler
        >>> check_sampler(AnalyticSampler(AbsorbingGraph(2), LogLinearSchedule()), steps=32)
    """
    if isinstance(sampler, Sampler):
        samplers = [sampler]
    elif callable(sampler):
        chosen = tiny_graphs().values() if graphs is None else graphs
        schedule = LogLinearSchedule() if schedule is None else schedule
        samplers = [sampler(graph, schedule) for graph in chosen]
    else:
        raise TypeError(f"sampler must be a Sampler or a factory, got {type(sampler).__name__}")
    for each in samplers:
        graph = each.graph
        if graph.num_states**3 > 200_000:
            raise ValueError(
                f"check_sampler enumerates the S^3 sequences of {graph!r}, too many; check the "
                "sampler on a tiny graph, or pass a factory (graph, schedule) -> Sampler"
            )
        check_sampler_output(each, seed=seed)
        check_sampler_run(each, seed=seed)
        check_sampler_determinism(each)
        check_sampler_stateless(each)
        check_sampler_all_fixed(each, seed=seed)
        check_sampler_empty_condition(each)
        check_sampler_clamping(each, seed=seed)
        pair, triple = ExactOracle.random(graph, 2, seed=1), ExactOracle.random(graph, 3, seed=1)
        fixed = Condition.at({1: graph.num_tokens - 1})
        check_sampler_exactness(
            each, pair, steps=(steps,), num_samples=num_samples, tolerance=tolerance, seed=seed
        )
        check_sampler_infill(
            each,
            triple,
            fixed,
            steps=steps,
            num_samples=num_samples,
            tolerance=tolerance,
            seed=seed,
        )


class ToyScore:
    """A cheap deterministic score function that records its calls, for the sampler checks.

    Its log-scores are rows of a fixed random table `[S, S]` picked by the current token, minus
    `min(sigma, 5)`. Every `x_t` it receives is kept in `calls`, and the `condition` keyword, when
    a sampler passes one, in `conditions`.

    Args:
        graph: the graph whose states are scored.
        seed: seed of the table.
    """

    def __init__(self, graph: Graph, seed: int = 0) -> None:
        s = graph.num_states
        self.table = torch.randn(s, s, generator=_generator(seed), dtype=F64)
        self.calls: list[Tensor] = []
        self.conditions: list[Clamp] = []

    def __call__(self, x_t: Tensor, sigma: Tensor, **kwargs: Clamp) -> Tensor:
        self.calls.append(x_t.clone())
        if "condition" in kwargs:
            self.conditions.append(kwargs["condition"])
        return (self.table[x_t] - sigma[:, None, None].clamp(max=5.0)).float()


def check_sampler_output(sampler: Sampler, *, seed: int = 0) -> None:
    """`sample` returns a LongTensor `[batch, length]` of data tokens (of any state when the
    sampler skips the denoise step)."""
    it, graph = _Subject(sampler), sampler.graph
    x = sampler.sample(ToyScore(graph), 6, 9, 5, generator=_generator(seed))
    if not isinstance(x, Tensor) or tuple(x.shape) != (6, 9) or x.dtype != torch.long:
        raise it.fail(
            "output", f"sample(batch=6, length=9) returned {_describe(x)}, not [6, 9] int64"
        )
    top = graph.num_tokens if sampler.denoise else graph.num_states
    if bool(((x < 0) | (x >= top)).any()):
        b, i = _first((x < 0) | (x >= top))
        kind = "a data token" if sampler.denoise else "a state"
        raise it.fail("output", f"sample(...)[{b}, {i}] = {int(x[b, i])} is not {kind}")


def check_sampler_run(sampler: Sampler, *, steps: int = 7, seed: int = 0) -> SampleResult:
    """`run` returns a `SampleResult` whose `nfe` is `steps` (+ 1 with the denoise step) and the
    number of score calls, and whose `times` are `sampler.times(steps)` in float64.

    Returns the result, for further checks.
    """
    it, score = _Subject(sampler, 1e-12, 1e-12), ToyScore(sampler.graph)
    result = sampler.run(score, 3, 4, steps, generator=_generator(seed))
    if not isinstance(result, SampleResult):
        raise it.fail("run", f"run(...) returned a {type(result).__name__}, not a SampleResult")
    nfe = steps + int(sampler.denoise)
    if not result.nfe == nfe == len(score.calls):
        raise it.fail(
            "run",
            f"run(steps={steps}) reports nfe = {result.nfe} after {len(score.calls)} score calls; "
            f"expected {nfe}",
        )
    if result.times.dtype != F64:
        raise it.fail("run", f"run(...).times is {result.times.dtype}, not float64")
    grid = sampler.times(steps)
    it.close("run", "run(...).times", result.times, f"sampler.times({steps})", grid, ("step",))
    return result


def check_sampler_determinism(sampler: Sampler) -> None:
    """Generators seeded alike give the same samples, and another seed other samples (every draw
    uses the `generator` argument, not torch's global generator)."""
    it, score = _Subject(sampler), ToyScore(sampler.graph)
    a, b, c = (sampler.sample(score, 8, 6, 4, generator=_generator(k)) for k in (1, 1, 2))
    if not torch.equal(a, b):
        raise it.fail("determinism", "generators seeded alike gave different samples")
    if torch.equal(a, c):
        raise it.fail("determinism", "generators seeded 1 and 2 gave the same samples")


def check_sampler_stateless(sampler: Sampler) -> None:
    """A call to `sample` (with a condition) leaves every attribute of the sampler as it was."""
    before = dict(vars(sampler))
    condition = Condition.at({0: 1 % sampler.graph.num_tokens})
    sampler.sample(ToyScore(sampler.graph), 2, 3, 3, condition=condition, generator=_generator(0))
    after = vars(sampler)
    changed = sorted(
        set(before) ^ set(after) | {k for k in before if after.get(k) is not before[k]}
    )
    if changed:
        detail = f"sample(...) changed the attributes {changed}; samplers keep no state on self"
        raise _Subject(sampler).fail("statelessness", detail)


def check_sampler_all_fixed(sampler: Sampler, *, seed: int = 0) -> None:
    """With every position fixed, `run` returns the fixed tokens without calling the score."""
    tokens, score = torch.arange(7) % sampler.graph.num_tokens, ToyScore(sampler.graph)
    condition = Condition.prefix(tokens)
    result = sampler.run(score, 5, 7, 4, condition=condition, generator=_generator(seed))
    if not torch.equal(result.tokens, tokens.expand(5, 7)) or result.nfe != 0 or score.calls:
        raise _Subject(sampler).fail(
            "conditioning",
            f"with every position fixed to {tokens.tolist()}, run(...) returned "
            f"{result.tokens[0].tolist()}, ... with nfe = {result.nfe} and {len(score.calls)} "
            "score calls; expected the fixed tokens and no call",
        )


def check_sampler_empty_condition(sampler: Sampler) -> None:
    """An empty `Condition` and an all-free `Clamp` give the unconditional samples."""
    score = ToyScore(sampler.graph)
    plain = sampler.sample(score, 8, 6, 5, generator=_generator(3))
    free = Clamp.from_tensors(torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.bool))
    for empty in (Condition(), free):
        if not torch.equal(
            sampler.sample(score, 8, 6, 5, condition=empty, generator=_generator(3)), plain
        ):
            detail = f"condition={empty!r} fixes nothing but changed the samples of the same seed"
            raise _Subject(sampler).fail("conditioning", detail)


def check_sampler_clamping(sampler: Sampler, *, seed: int = 0) -> None:
    """Fixed positions hold their tokens in every `x_t` the score sees and in the result."""
    n = sampler.graph.num_tokens
    fixed = {1: 2 % n, 2: 0, 5: 1 % n}
    condition = Condition.span(1, [fixed[1], fixed[2]]) | Condition.suffix([fixed[5]])
    score = ToyScore(sampler.graph)
    x = sampler.sample(score, 10, 6, 6, condition=condition, generator=_generator(seed))
    for k, seen in enumerate([*score.calls, x]):
        for i, token in fixed.items():
            if not bool((seen[:, i] == token).all()):
                where = "the result" if k == len(score.calls) else f"the x_t of score call {k}"
                detail = (
                    f"position {i} is fixed to {token} but holds {seen[:, i].tolist()} in {where}"
                )
                raise _Subject(sampler).fail("conditioning", detail)


def check_sampler_exactness(
    sampler: Sampler,
    oracle: ExactOracle,
    *,
    steps: Sequence[int] = (128,),
    num_samples: int = 10_000,
    tolerance: float = 0.04,
    noise: float = 0.01,
    seed: int = 0,
) -> list[float]:
    """Samples drawn with `oracle`'s exact scores approach its data distribution.

    The total-variation distance after the last of `steps` must be below `tolerance`. Given
    several (increasing) step counts, the distance must also fall: each within `noise` (the
    Monte Carlo error) of the one before, and the first above the last by more than `noise` (so
    pick a first count whose discretisation error shows). Returns the distances.
    """
    if sampler.graph.num_states != oracle.graph.num_states:
        raise ValueError(f"the sampler's graph {sampler.graph!r} is not the oracle's")
    tv = []
    for n in steps:
        x = sampler.sample(oracle, num_samples, oracle.length, n, generator=_generator(seed))
        tv.append(oracle.total_variation(x))
    it, table = (
        _Subject(sampler),
        ", ".join(f"{n}: {d:.4f}" for n, d in zip(steps, tv, strict=True)),
    )
    if not tv[-1] < tolerance:
        raise it.fail(
            "exactness",
            f"with exact scores, {num_samples} samples of length {oracle.length} drawn in "
            f"{steps[-1]} steps are at total-variation distance {tv[-1]:.4f} from the data "
            f"distribution, above {tolerance} (distance by steps: {table})",
        )
    falls = all(fine < coarse + noise for coarse, fine in itertools.pairwise(tv))
    if len(tv) > 1 and not (falls and tv[0] > tv[-1] + noise):
        detail = (
            f"the total-variation distance does not fall with the steps ({table}; noise {noise})"
        )
        raise it.fail("exactness", detail)
    return tv


def check_sampler_infill(
    sampler: Sampler,
    oracle: ExactOracle,
    condition: Condition,
    *,
    steps: int = 128,
    num_samples: int = 10_000,
    tolerance: float = 0.04,
    seed: int = 0,
) -> float:
    """With `condition`'s positions fixed, samples keep them and are within total-variation
    distance `tolerance` of the exact conditional `oracle.conditional(condition)`.

    Absorbing graphs get the unconditional exact scores (clamping is then exact); other graphs
    the conditional oracle's, through `pass_condition=True`. Returns the distance.
    """
    target, g = oracle.conditional(condition), _generator(seed)
    args = (num_samples, oracle.length, steps)
    if isinstance(sampler.graph, AbsorbingGraph):
        x = sampler.sample(oracle, *args, condition=condition, generator=g)
    else:

        def conditional(x_t: Tensor, sigma: Tensor, *, condition: Clamp) -> Tensor:
            return oracle.conditional_log_score(x_t, sigma, condition=condition)

        x = sampler.sample(
            conditional, *args, condition=condition, pass_condition=True, generator=g
        )
    it, clamp = _Subject(sampler), target.clamp
    for i in clamp.mask.nonzero().squeeze(-1).tolist():
        if not bool((x[:, i] == clamp.tokens[i]).all()):
            raise it.fail(
                "infill", f"position {i} is fixed to {int(clamp.tokens[i])}, but samples change it"
            )
    tv = target.total_variation(x)
    if not tv < tolerance:
        raise it.fail(
            "infill",
            f"with exact conditional scores, {num_samples} samples drawn in {steps} steps are at "
            f"total-variation distance {tv:.4f} from the exact conditional, above {tolerance}",
        )
    return tv


# == internals ====================================================================================


class _Subject:
    """Failure messages about one object: `"<property> check failed for <object>: <detail>"`."""

    def __init__(self, obj: object, atol: float = 0.0, rtol: float = 0.0) -> None:
        # A module's repr lists its layers: name its class only.
        self.name = type(obj).__name__ if isinstance(obj, nn.Module) else repr(obj)
        self.atol, self.rtol = atol, rtol

    def fail(self, prop: str, detail: str) -> AssertionError:
        return AssertionError(f"{prop} check failed for {self.name}: {detail}")

    def close(
        self,
        prop: str,
        what: str,
        actual: Tensor,
        reference: str,
        expected: Tensor,
        axes: Sequence[str] = (),
        *,
        labels: Sequence[str] | None = None,
        atol: float | None = None,
        rtol: float | None = None,
    ) -> None:
        """Raise unless `|actual - expected| <= atol + rtol |expected|` everywhere (NaN fails,
        equal infinities pass), naming the worst entry by `axes` (or by `labels` in 1-d)."""
        atol = self.atol if atol is None else atol
        rtol = self.rtol if rtol is None else rtol
        if not isinstance(actual, Tensor) or tuple(actual.shape) != tuple(expected.shape):
            raise self.fail(
                prop, f"{what} is {_describe(actual)}, but {reference} is {list(expected.shape)}"
            )
        a, e = actual.detach().to("cpu", F64), expected.detach().to("cpu", F64)
        err = (a - e).abs()
        excess = torch.where(a == e, -math.inf, err - (atol + rtol * e.abs()))
        excess = torch.where(a.isnan() | e.isnan(), math.inf, excess)
        if excess.numel() == 0 or not bool((excess > 0).any()):
            return
        index = _unravel(int(excess.argmax()), excess.shape)
        if labels is not None and len(index) == 1:
            where = f" at [{labels[index[0]]}]"
        elif index and len(axes) == len(index):
            where = " at [" + ", ".join(f"{n}={i}" for n, i in zip(axes, index, strict=True)) + "]"
        else:
            where = f" at {list(index)}" if index else ""
        raise self.fail(
            prop,
            f"{what} differs from {reference} by {float(err[index]):.3g}{where} (got "
            f"{float(a[index]):.6g}, expected {float(e[index]):.6g}; tolerance {atol:g} + "
            f"{rtol:g} * |expected|)",
        )

    def raises(
        self, prop: str, what: str, call: Callable[[], object], error: type[Exception], match: str
    ) -> None:
        """Raise unless `call()` raises `error` with a message matching the regex `match`."""
        expected = f"expected a {error.__name__} matching {match!r}"
        try:
            call()
        except error as exc:
            if re.search(match, str(exc)) is None:
                raise self.fail(prop, f"{what} raised {exc!r}; {expected}") from exc
            return
        except Exception as exc:
            raise self.fail(prop, f"{what} raised {exc!r}; {expected}") from exc
        raise self.fail(prop, f"{what} did not raise; {expected}")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"{list(value.shape)} {value.dtype}"
    return f"a {type(value).__name__}"


def _unravel(flat: int, shape: Sequence[int]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


def _first(mask: Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0])


def _reference_kernel(graph: Graph, sigma: float) -> tuple[Tensor, str]:
    """The dense `P = expm(sigma Q)` `[S, S]` in float64 (every column the limit at infinity)."""
    if math.isinf(sigma):
        pi = graph.limit_distribution(F64)
        return pi[:, None].expand(pi.shape[0], pi.shape[0]), "the limit distribution"
    return torch.linalg.matrix_exp(sigma * graph.rate_matrix(F64)), "matrix_exp(sigma Q)"


def _check_draws(
    it: _Subject, prop: str, what: str, draws: Tensor, shape: tuple[int, ...], num_states: int
) -> None:
    if not isinstance(draws, Tensor) or tuple(draws.shape) != shape or draws.is_floating_point():
        raise it.fail(prop, f"{what} returned {_describe(draws)}, not integer tokens {list(shape)}")
    bad = (draws < 0) | (draws >= num_states)
    if bool(bad.any()):
        raise it.fail(prop, f"{what} drew {int(draws[_first(bad)])}, outside [0, {num_states})")


def _chi_square(counts: Tensor, probs: Tensor) -> tuple[float, int]:
    """Pearson's p-value of `counts` against `probs`, and the cell with the largest residual.

    Cells expecting fewer than 5 draws are pooled (in a cell of their own if it reaches 5, else
    into the most probable cell), so that the chi-square approximation holds.
    """
    expected = probs * counts.sum()
    residual = (counts - expected).abs() / expected.clamp_min(1e-300).sqrt()
    worst = int(torch.where(probs > 0, residual, -1.0).argmax())
    rare = expected < 5
    obs, exp = counts[~rare], expected[~rare]
    if bool(rare.any()) and obs.numel():
        pooled_obs, pooled_exp = counts[rare].sum(), expected[rare].sum()
        if float(pooled_exp) >= 5:
            obs, exp = torch.cat([obs, pooled_obs[None]]), torch.cat([exp, pooled_exp[None]])
        else:
            top = int(exp.argmax())
            obs[top] += pooled_obs
            exp[top] += pooled_exp
    if obs.numel() < 2:
        return 1.0, worst
    stat = ((obs - exp) ** 2 / exp).sum()
    half_dof = torch.tensor((obs.numel() - 1) / 2, dtype=F64)
    return float(torch.special.gammaincc(half_dof, stat / 2)), worst
