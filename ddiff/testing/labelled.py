"""A labelled tiny problem with exact quantities: p(x0), p(c | x0), conditional scores, p(c | x_t)."""

from __future__ import annotations

import torch
from torch import Tensor

from ddiff._checks import batch_sigma, check_tokens
from ddiff.conditioning import Clamp
from ddiff.graphs import Graph
from ddiff.testing.oracle import ExactOracle


class LabelledOracle:
    r"""A joint law $p(x_0, c) = p(x_0)\, p(c \mid x_0)$ of tiny sequences and labels, exactly.

    Everything guidance needs is computed by enumeration of the $N^L$ clean sequences:

    - `unconditional`: the `ExactOracle` of $p(x_0)$ (exact unconditional scores);
    - `conditional(c)`: the `ExactOracle` of $p(x_0 \mid c) \propto p(x_0)\, p(c \mid x_0)$,
      whose scores are the exact conditional concrete scores;
    - `log_classifier(x_t, sigma)`: the exact noisy classifier, for every label,
      $$p(c \mid x_t) = \sum_{x_0} p(c \mid x_0)\, p(x_0 \mid x_t), \qquad
        p(x_0 \mid x_t) \propto p(x_0) \prod_i P(\bar\sigma)[x_t^i, x_0^i];$$
      `classifier(c)` binds one label (a `ddiff.guidance.NoisyClassifier`).

    With these, classifier guidance at weight 1 reproduces the conditional scores exactly,
    since $p_t(y \mid c) / p_t(x \mid c) = [p_t(y) / p_t(x)]\; p(c \mid y) / p(c \mid x)$
    (Nisonoff et al., *Unlocking Guidance for Discrete State-Space Diffusion and Flow Models*,
    2024), so users can check their own guidance and samplers against the exact law.

    The classifier also takes a float one-hot input `[B, L, S]` and is differentiable in it
    (each factor $P[x_t^i, x_0^i]$ is $e_i^\top P[:, x_0^i]$, linear in the one-hot $e_i$), which
    is what the first-order mode of `ClassifierGuidance` needs. The products over positions are
    taken in float64 in linear space, not in log space: an absorbing kernel has exact zeros,
    whose logarithms would give NaN gradients, and at $L \le 6$ with $\bar\sigma \le 20$ the
    products stay far above float64's smallest number.

    Args:
        graph: the forward process.
        data_probs: $p(x_0)$, `[N] * L`, as for `ExactOracle`.
        label_probs: $p(c \mid x_0)$, `[N] * L + [C]` (C >= 2 labels); non-negative, each
            sequence's row summing to 1 (within 1e-6).

    Example:
        >>> import torch
        >>> from ddiff import UniformGraph
        >>> from ddiff.testing import LabelledOracle
        >>> p_x = torch.tensor([0.5, 0.5])  # one position, two tokens
        >>> p_c_given_x = torch.tensor([[0.9, 0.1], [0.2, 0.8]])  # two labels
        >>> oracle = LabelledOracle(UniformGraph(2), p_x, p_c_given_x)
        >>> oracle.conditional(1).data_probs  # p(x | c = 1)
        tensor([0.1111, 0.8889], dtype=torch.float64)
        >>> x_t = torch.tensor([[0]])
        >>> oracle.log_classifier(x_t, torch.tensor([0.0])).exp()  # no noise: p(c | x_0)
        tensor([[0.9000, 0.1000]], dtype=torch.float64)
        >>> oracle.log_classifier(x_t, torch.tensor([float("inf")])).exp()  # all noise: p(c)
        tensor([[0.5500, 0.4500]], dtype=torch.float64)
    """

    def __init__(self, graph: Graph, data_probs: Tensor, label_probs: Tensor) -> None:
        self.unconditional = ExactOracle(graph, data_probs)
        self.graph = graph
        self.length = self.unconditional.length
        n, length = graph.num_tokens, self.length
        lp = torch.as_tensor(label_probs, dtype=torch.float64)
        if lp.dim() != length + 1 or list(lp.shape[:-1]) != [n] * length or lp.shape[-1] < 2:
            raise ValueError(
                f"label_probs must have shape [{n}] * {length} + [labels] (p(c | x_0) for each "
                f"sequence, at least 2 labels), got {list(lp.shape)}"
            )
        rows = lp.reshape(-1, lp.shape[-1])
        if bool((rows < 0).any()) or bool(((rows.sum(dim=-1) - 1.0).abs() > 1e-6).any()):
            raise ValueError("label_probs must be non-negative, each sequence's row summing to 1")
        self.label_probs = lp / lp.sum(dim=-1, keepdim=True)
        self.num_labels = int(lp.shape[-1])
        self._p0 = self.unconditional.data_probs.reshape(-1)  # [M]
        self._joint = self._p0[:, None] * self.label_probs.reshape(-1, self.num_labels)  # [M, C]
        self._sequences = self.unconditional.all_sequences(data_only=True)  # [M, L]
        self._conditionals: dict[int, ExactOracle] = {}

    @classmethod
    def random(
        cls,
        graph: Graph,
        length: int,
        num_labels: int = 2,
        seed: int = 0,
        concentration: float = 0.5,
        label_concentration: float = 0.3,
    ) -> LabelledOracle:
        """A random problem: $p(x_0)$ Dirichlet(`concentration`) over the $N^L$ sequences and
        $p(c \\mid x_0)$ Dirichlet(`label_concentration`) over the labels, for each sequence
        (small concentrations give informative labels)."""
        g = torch.Generator().manual_seed(seed)
        n = graph.num_tokens
        m = n**length

        def dirichlet(shape: tuple[int, ...], alpha: float) -> Tensor:
            gamma = torch._standard_gamma(
                torch.full(shape, alpha, dtype=torch.float64), generator=g
            )
            return gamma / gamma.sum(dim=-1, keepdim=True)

        p0 = dirichlet((m,), concentration).reshape([n] * length)
        labels = dirichlet((m, num_labels), label_concentration).reshape([n] * length + [-1])
        return cls(graph, p0, labels)

    # -- laws -------------------------------------------------------------------------------------

    def label_marginal(self) -> Tensor:
        """$p(c)$, `[C]` float64."""
        return self._joint.sum(dim=0)

    def conditional(self, label: int) -> ExactOracle:
        r"""The exact oracle of $p(x_0 \mid c)$: exact conditional scores, samples, distances."""
        label = self._check_label(label)
        if label not in self._conditionals:
            joint = self._joint[:, label]
            if float(joint.sum()) <= 0.0:
                raise ValueError(f"label {label} has probability 0")
            shape = self.unconditional.data_probs.shape
            self._conditionals[label] = ExactOracle(
                self.graph, (joint / joint.sum()).reshape(shape)
            )
        return self._conditionals[label]

    def label_probability(self, x_0: Tensor, label: int) -> float:
        r"""The mean of $p(c \mid x_0)$ over the sequences `x_0` `[M, L]` (e.g. samples)."""
        label = self._check_label(label)
        check_tokens(x_0, self.graph.num_tokens, "x_0")
        n = self.graph.num_tokens
        strides = n ** torch.arange(self.length - 1, -1, -1)
        index = (x_0.long().cpu() * strides).sum(dim=-1)  # position among the N^L sequences
        return float(self.label_probs.reshape(-1, self.num_labels)[index, label].mean())

    # -- the exact noisy classifier -----------------------------------------------------------------

    def log_classifier(
        self, x_t: Tensor, sigma: Tensor | float, *, condition: Clamp | None = None
    ) -> Tensor:
        r"""$\log p(c \mid x_t)$ for every label, `[B, C]` float64.

        Args:
            x_t: noised tokens, LongTensor `[B, L]`, or a float one-hot `[B, L, S]`
                (differentiable).
            sigma: total noise, a scalar or `[B]`.
            condition: positions that are never noised (the `ConditionalOracle` process: a
                sampler's clamped positions), as a `Clamp` `[L]` or `[B, L]`; their likelihood
                factor is $\mathbb 1[x_0^i = x_t^i]$.

        Sequences that no clean sequence can reach ($p(x_t) = 0$) give NaN.
        """
        s = self.graph.num_states
        if x_t.is_floating_point():
            if x_t.dim() != 3 or x_t.shape[1] != self.length or x_t.shape[2] != s:
                raise ValueError(
                    f"a one-hot x_t must have shape [batch, {self.length}, {s}], got "
                    f"{list(x_t.shape)}"
                )
            one_hot = x_t.to(torch.float64).cpu()
            sig = batch_sigma(sigma, one_hot[..., 0]).reshape(-1).to(torch.float64).cpu()
            fixed = None if condition is None else condition.expand(x_t.shape[0]).mask.cpu()
            return self._log_classify(one_hot, sig, fixed).to(x_t.device)
        check_tokens(x_t, s, "x_t")
        if x_t.dim() != 2 or x_t.shape[1] != self.length:
            raise ValueError(f"x_t must have shape [batch, {self.length}], got {list(x_t.shape)}")
        # Tokens: look the answer up in a table over all S^L sequences, one per noise level and
        # fixed set (a sampler's batch holds many copies of few sequences).
        x = x_t.long().cpu()
        sig = batch_sigma(sigma, x).reshape(-1).to(torch.float64).cpu()
        fixed = (
            torch.zeros_like(x, dtype=torch.bool)
            if condition is None
            else condition.expand(x.shape[0]).mask.cpu()
        )
        levels, level = _groups(sig)
        fixed_sets, fixed_set = _groups((fixed.long() * 2 ** torch.arange(self.length)).sum(-1))
        keys, group = _groups(level * fixed_sets.shape[0] + fixed_set)
        every = torch.nn.functional.one_hot(self.unconditional.all_sequences(), s).to(torch.float64)
        if keys.shape[0] * every.shape[0] > x.shape[0]:
            # Many noise levels (e.g. one per sequence): computing each row is cheaper.
            one_hot = torch.nn.functional.one_hot(x, s).to(torch.float64)
            return self._log_classify(one_hot, sig, fixed).to(x_t.device)
        index = self.unconditional.index(x)
        out = torch.empty(x.shape[0], self.num_labels, dtype=torch.float64)
        for k, key in enumerate(keys.tolist()):
            rows = torch.arange(x.shape[0]) if keys.shape[0] == 1 else (group == k).nonzero()[:, 0]
            bits = int(fixed_sets[key % fixed_sets.shape[0]])
            mask = torch.tensor([bool(bits >> i & 1) for i in range(self.length)])
            noise = levels[key // fixed_sets.shape[0]].expand(every.shape[0])
            table = self._log_classify(every, noise, mask.expand(every.shape[0], -1))
            out[rows] = table[index[rows]]
        return out.to(x_t.device)

    def _log_classify(self, one_hot: Tensor, sigma: Tensor, fixed: Tensor | None) -> Tensor:
        """`log_classifier` from a float64 one-hot `[B, L, S]`, `sigma` `[B]`, fixed `[B, L]`."""
        n = self.graph.num_tokens
        unique, inverse = torch.unique(sigma, return_inverse=True)
        kernels = self.graph.kernel(unique)[inverse][:, :, :n]  # [B, S, N]: P[x_t, x_0]
        # rows[b, i, a] = p(x_t^i | x_0^i = a) = e_i^T P[:, a]
        rows = torch.einsum("bls,bsa->bla", one_hot, kernels)
        if fixed is not None:
            # A fixed position is never noised: p(x_t^i | x_0^i = a) = 1[a = x_t^i].
            rows = torch.where(fixed.unsqueeze(-1), one_hot[..., :n], rows)
        likelihood = torch.ones(one_hot.shape[0], self._sequences.shape[0], dtype=torch.float64)
        for i in range(self.length):
            likelihood = likelihood * rows[:, i, self._sequences[:, i]]  # [B, M]
        log_joint = torch.log(likelihood @ self._joint)  # log p(c, x_t) [B, C]
        log_evidence = torch.log(likelihood @ self._p0)  # log p(x_t) [B]
        return log_joint - log_evidence.unsqueeze(-1)

    def classifier(self, label: int) -> _LabelClassifier:
        r"""The exact noisy classifier of one label: `(x_t, sigma) -> log p(c | x_t)` `[B]`."""
        return _LabelClassifier(self, self._check_label(label))

    # -- internals ------------------------------------------------------------------------------

    def _check_label(self, label: int) -> int:
        if (
            isinstance(label, bool)
            or not isinstance(label, int)
            or not 0 <= label < self.num_labels
        ):
            raise ValueError(
                f"label must be a class index in [0, {self.num_labels}), got {label!r}"
            )
        return label

    def __repr__(self) -> str:
        return f"LabelledOracle({self.graph!r}, length={self.length}, num_labels={self.num_labels})"


class _LabelClassifier:
    """`LabelledOracle.classifier(label)`: the exact $\\log p(c \\mid x_t)$ of one label, `[B]`."""

    def __init__(self, oracle: LabelledOracle, label: int) -> None:
        self.oracle = oracle
        self.label = label

    def __call__(
        self, x_t: Tensor, sigma: Tensor | float, *, condition: Clamp | None = None
    ) -> Tensor:
        return self.oracle.log_classifier(x_t, sigma, condition=condition)[:, self.label]

    def __repr__(self) -> str:
        return f"{self.oracle!r}.classifier({self.label})"


def _groups(values: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct values and each entry's group (cheap when all entries are equal)."""
    if bool((values == values[0]).all()):
        return values[:1], torch.zeros(values.shape[0], dtype=torch.long)
    return torch.unique(values, return_inverse=True)
