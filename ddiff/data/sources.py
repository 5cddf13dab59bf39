"""Synthetic sources with exactly known entropy, for training tests, baselines and benchmarks."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from ddiff._categorical import sample_categorical

__all__ = ["MarkovSource", "PlantedMotifSource"]


class MarkovSource:
    r"""Sequences of a fixed length from a Markov chain of order k over N tokens.

    $$p(x^1 \dots x^L) = \pi_0(x^1 \dots x^k) \prod_{i=k+1}^{L} T[x^{i-k} \dots x^{i-1}, x^i],$$

    with **row**-stochastic `transition` (`T[c, b]` is the probability that b follows the
    context c; every row sums to 1; the usual Markov-chain convention, not the column convention
    of rate matrices). A context $c = (a_1 \dots a_k)$ is row $\sum_j a_j N^{k-j}$ (the first
    token most significant), so an order-1 chain has `transition` `[N, N]` and an order-k chain
    `[N**k, N]`; `initial` is the joint distribution of the first k tokens, indexed the same way.
    The entropy of a sequence is exact:
    $H = H(\pi_0) + \sum_{i=k+1}^{L} \sum_c p_i(c)\, H(T[c, :])$, where $p_i$ is the distribution
    of the context before position i. A model trained on this source cannot beat
    `entropy_per_token()`, and the uniform baseline is $\log N$: a likelihood bound between the
    two measures what was learned.

    Args:
        transition: `[N**k, N]` non-negative, rows summing to 1 (within 1e-6; renormalised).
        initial: `[N**k]` distribution of the first k tokens (default: uniform).
        length: sequence length L >= k.

    Raises:
        ValueError: if the shapes disagree, an entry is negative, a row does not sum to 1, or
            L < k.

    Example:
        >>> import torch
        >>> from ddiff.data import MarkovSource
        >>> source = MarkovSource(torch.tensor([[0.9, 0.1], [0.1, 0.9]]), length=4)
        >>> round(source.entropy_per_token("bits"), 4)  # (1 + 3 H(0.1)) / 4
        0.6017
        >>> source.sample(3, torch.Generator().manual_seed(0)).shape
        torch.Size([3, 4])
        >>> second = MarkovSource.random(4, length=32, order=2, seed=0)
        >>> second.order, second.transition.shape
        (2, torch.Size([16, 4]))
    """

    def __init__(self, transition: Tensor, initial: Tensor | None = None, length: int = 16) -> None:
        t = torch.as_tensor(transition, dtype=torch.float64)
        if t.dim() != 2 or t.shape[1] < 1 or t.shape[0] < 1:
            raise ValueError(f"transition must have shape [N**k, N], got {list(t.shape)}")
        n, rows = t.shape[1], t.shape[0]
        order = _order_of(rows, n)
        if order is None:
            raise ValueError(
                f"transition has {rows} rows, which is not a power N**k of its N = {n} columns "
                "(one row per context of k tokens)"
            )
        p0 = torch.full((rows,), 1.0 / rows, dtype=torch.float64) if initial is None else initial
        p0 = torch.as_tensor(p0, dtype=torch.float64)
        if p0.shape != (rows,):
            raise ValueError(
                f"initial must have shape [{rows}] (the first {order} tokens) to match "
                f"transition, got {list(p0.shape)}"
            )
        _check_distribution(t, "transition rows")
        _check_distribution(p0[None], "initial")
        if isinstance(length, bool) or int(length) != length or length < max(order, 1):
            raise ValueError(
                f"length must be an integer >= the order {order} (and >= 1), got {length!r}"
            )
        self.transition = t / t.sum(dim=-1, keepdim=True)
        self.initial = p0 / p0.sum()
        self.length = int(length)
        self.order = order

    @classmethod
    def random(
        cls,
        num_tokens: int,
        length: int,
        seed: int = 0,
        concentration: float = 0.3,
        order: int = 1,
    ) -> MarkovSource:
        """A chain whose rows (and initial distribution) are Dirichlet(`concentration`) draws.

        Small concentrations give peaked rows, hence a low entropy and an easy learning target.
        """
        if num_tokens < 1:
            raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
        if not concentration > 0:
            raise ValueError(f"concentration must be > 0, got {concentration!r}")
        if isinstance(order, bool) or int(order) != order or order < 1:
            raise ValueError(f"order must be a positive integer, got {order!r}")
        g = torch.Generator().manual_seed(seed)
        if order == 1:
            alpha = torch.full((num_tokens + 1, num_tokens), float(concentration))
            probs = _dirichlet(alpha.double(), g)
            return cls(probs[1:], probs[0], length)
        rows = num_tokens**order
        transition = _dirichlet(torch.full((rows, num_tokens), float(concentration)).double(), g)
        initial = _dirichlet(torch.full((1, rows), float(concentration)).double(), g)[0]
        return cls(transition, initial, length)

    @property
    def num_tokens(self) -> int:
        """Alphabet size N."""
        return self.transition.shape[1]

    def _context_marginals(self) -> Tensor:
        """`[L - k + 1, N**k]`: the distribution of the k tokens before positions k+1 ... L+1."""
        n, k = self.num_tokens, self.order
        rows = self.transition.shape[0]
        # Context c -> c' = (c without its first token, b): c' = (c mod N**(k-1)) * N + b.
        nxt = (torch.arange(rows)[:, None] % (rows // n)) * n + torch.arange(n)[None, :]
        p = [self.initial]
        for _ in range(self.length - k):
            q = torch.zeros(rows, dtype=torch.float64)
            q.index_add_(0, nxt.reshape(-1), (p[-1][:, None] * self.transition).reshape(-1))
            p.append(q)
        return torch.stack(p)

    def marginals(self) -> Tensor:
        """`[L, N]`: the distribution of each position (float64)."""
        n, k = self.num_tokens, self.order
        ctx = self._context_marginals()  # [L - k + 1, N**k]
        # Positions 1..k from the joint of the first context, then the last token of each later one.
        joint = ctx[0].reshape((n,) * k)
        first = [joint.movedim(j, 0).reshape(n, -1).sum(dim=1) for j in range(k)]
        rest = [c.reshape(-1, n).sum(dim=0) for c in ctx[1:]]
        return torch.stack(first + rest)

    def entropy(self) -> float:
        """Exact entropy of a whole sequence, nats."""
        row_entropy = -torch.xlogy(self.transition, self.transition).sum(dim=-1)  # [N**k]
        first = -torch.xlogy(self.initial, self.initial).sum()
        rest = (self._context_marginals()[:-1] @ row_entropy).sum()
        return float(first + rest)

    def entropy_per_token(self, unit: Literal["nats", "bits"] = "nats") -> float:
        """Exact entropy per token, `entropy() / L`, in nats or bits."""
        return _per_token(self.entropy(), self.length, unit)

    def _codes(self, x: Tensor) -> Tensor:
        """`[B, L - k + 1]`: the context index of every window of k tokens."""
        n, k = self.num_tokens, self.order
        weights = n ** torch.arange(k - 1, -1, -1)
        return (x.unfold(1, k, 1) * weights).sum(dim=-1)

    def nll(self, x: Tensor) -> Tensor:
        """Exact $-\\log p(x)$ per sequence of `x` `[B, L]`, nats, float64 `[B]`."""
        x = _check_tokens(x, self.length, self.num_tokens)
        codes = self._codes(x)
        log_p = torch.log(self.initial)[codes[:, 0]]
        if self.length > self.order:
            steps = torch.log(self.transition)[codes[:, :-1], x[:, self.order :]]
            log_p = log_p + steps.sum(dim=-1)
        return -log_p

    def sample(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        """`num` independent sequences, LongTensor `[num, L]`."""
        if num < 0:
            raise ValueError(f"num must be >= 0, got {num}")
        n, k = self.num_tokens, self.order
        x = torch.empty(num, self.length, dtype=torch.long)
        code = sample_categorical(self.initial.expand(num, -1), generator)
        for j in range(k):
            x[:, j] = (code // n ** (k - 1 - j)) % n
        for i in range(k, self.length):
            x[:, i] = sample_categorical(self.transition[code], generator)
            code = (code % (n ** (k - 1))) * n + x[:, i]
        return x

    def __repr__(self) -> str:
        h = self.entropy_per_token("bits")
        return (
            f"MarkovSource(num_tokens={self.num_tokens}, order={self.order}, "
            f"length={self.length}, entropy={h:.4f} bits/token)"
        )


class PlantedMotifSource:
    r"""Markov background with position-weight-matrix motifs planted at random positions.

    A "promoter-like" source: draw a placement $z$ uniformly from every valid one (the first
    motif's start and, for each later motif, a spacer of background tokens from its allowed
    range), draw the motif tokens from their position weight matrices (PWMs) and the
    $L - \sum_j w_j$ background tokens from `background` (a `MarkovSource` of that length), and
    interleave them. The likelihood of any sequence is exact, a sum over placements:

    $$p(x) = \frac{1}{|Z|} \sum_{z \in Z} p_{\mathrm{bg}}(x_{\bar z})
      \prod_j \prod_{u=1}^{w_j} M_j[u, x^{z_j + u}],$$

    where $x_{\bar z}$ is $x$ with the motifs of placement z cut out. The entropy splits as
    $H(X) = H(X, Z) - H(Z \mid X)$: $H(X, Z) = \log |Z| + H(p_{\mathrm{bg}}) + \sum_j H(M_j)$
    is exact, and the small posterior term $H(Z \mid X) \in [0, \log |Z|]$ is a Monte Carlo
    average of exact posterior entropies over samples of the source
    (`entropy_estimate`; its standard error is reported, typically 1e-4 bits per token).

    Args:
        background: a `MarkovSource` of length $L - \sum_j w_j$ over the same N tokens.
        motifs: PWMs, each `[w_j, N]` with rows summing to 1.
        spacers: for each motif after the first, the inclusive range `(lo, hi)` of background
            tokens between the end of the previous motif and its start.

    Raises:
        ValueError: if the alphabets disagree, a PWM row is not a distribution, a spacer range is
            empty, or no placement fits.

    Example:
        >>> import torch
        >>> from ddiff.data import PlantedMotifSource
        >>> source = PlantedMotifSource.promoter_like(length=48, seed=0)
        >>> source.length, source.num_tokens, source.num_placements
        (48, 4, 100)
        >>> x = source.sample(2, torch.Generator().manual_seed(0))
        >>> x.shape, source.nll(x).shape
        (torch.Size([2, 48]), torch.Size([2]))
    """

    def __init__(
        self,
        background: MarkovSource,
        motifs: Sequence[Tensor],
        spacers: Sequence[tuple[int, int]] = (),
    ) -> None:
        if not isinstance(background, MarkovSource):
            raise TypeError(f"background must be a MarkovSource, got {type(background).__name__}")
        n = background.num_tokens
        pwms = []
        for j, m in enumerate(motifs):
            m = torch.as_tensor(m, dtype=torch.float64)
            if m.dim() != 2 or m.shape[0] < 1 or m.shape[1] != n:
                raise ValueError(
                    f"motif {j} must be a PWM of shape [width, {n}], got {list(m.shape)}"
                )
            _check_distribution(m, f"motif {j} rows")
            pwms.append(m / m.sum(dim=-1, keepdim=True))
        if not pwms:
            raise ValueError("give at least one motif")
        if len(spacers) != len(pwms) - 1:
            raise ValueError(
                f"give one spacer range per motif after the first: {len(pwms) - 1}, got "
                f"{len(spacers)}"
            )
        for j, (lo, hi) in enumerate(spacers):
            if lo < 0 or hi < lo:
                raise ValueError(f"spacer {j} must be a range 0 <= lo <= hi, got {(lo, hi)}")
        self.background = background
        self.motifs = pwms
        self.spacers = [(int(lo), int(hi)) for lo, hi in spacers]
        self.length = background.length + sum(m.shape[0] for m in pwms)
        self._positions = self._placements()  # [|Z|, total motif width]: motif token positions
        keep = torch.ones(self._positions.shape[0], self.length, dtype=torch.bool)
        keep.scatter_(1, self._positions, False)
        self._background_positions = keep.nonzero()[:, 1].reshape(-1, background.length)
        if self._positions.shape[0] == 0:
            raise ValueError(
                f"no placement of motifs of widths {[m.shape[0] for m in pwms]} with spacers "
                f"{self.spacers} fits in length {self.length}"
            )
        self._cached_entropy: dict[tuple[int, int], tuple[float, float]] = {}

    @classmethod
    def promoter_like(
        cls, length: int = 64, seed: int = 0, strength: float = 0.8
    ) -> PlantedMotifSource:
        """A sigma70-like source over ACGT (ids 0-3): an order-2 random background with a
        TTGACA box, a spacer of 15-19 and a TATAAT box; each motif position puts `strength` on
        the consensus letter and spreads the rest evenly."""
        if not 0.25 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0.25, 1], got {strength!r}")
        boxes = []
        for consensus in ("TTGACA", "TATAAT"):
            pwm = torch.full((len(consensus), 4), (1.0 - strength) / 3.0, dtype=torch.float64)
            for u, letter in enumerate(consensus):
                pwm[u, "ACGT".index(letter)] = strength
            boxes.append(pwm)
        background = MarkovSource.random(4, length - 12, seed=seed, concentration=2.0, order=2)
        return cls(background, boxes, [(15, 19)])

    @property
    def num_tokens(self) -> int:
        """Alphabet size N."""
        return self.background.num_tokens

    @property
    def num_placements(self) -> int:
        """|Z|, the number of placements of the motifs."""
        return self._positions.shape[0]

    def _placements(self) -> Tensor:
        widths = [m.shape[0] for m in self.motifs]
        free = self.background.length
        rows: list[list[int]] = []
        for gaps in itertools.product(*(range(lo, hi + 1) for lo, hi in self.spacers)):
            for start in range(free - sum(gaps) + 1):
                positions: list[int] = []
                at = start
                for j, w in enumerate(widths):
                    positions.extend(range(at, at + w))
                    at += w + (gaps[j] if j < len(gaps) else 0)
                rows.append(positions)
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), sum(widths))

    def _log_joint(self, x: Tensor) -> Tensor:
        """`[B, |Z|]`: $\\log p(x, z)$ for every placement."""
        b, z = x.shape[0], self.num_placements
        log_pwm = torch.cat([m.log() for m in self.motifs])  # [total width, N]
        motif = log_pwm[torch.arange(log_pwm.shape[0]), x[:, self._positions]].sum(dim=-1)
        out = torch.empty(b, z, dtype=torch.float64)
        chunk = max(1, 2**22 // (z * self.background.length))  # ~32 MB of tokens at a time
        for first in range(0, b, chunk):
            rows = x[first : first + chunk, self._background_positions]  # [b', |Z|, L_bg]
            nll = self.background.nll(rows.reshape(-1, self.background.length))
            out[first : first + chunk] = -nll.reshape(-1, z)
        return out + motif - math.log(z)

    def nll(self, x: Tensor) -> Tensor:
        """Exact $-\\log p(x)$ per sequence of `x` `[B, L]`, nats, float64 `[B]`."""
        x = _check_tokens(x, self.length, self.num_tokens)
        return -torch.logsumexp(self._log_joint(x), dim=-1)

    def joint_entropy(self) -> float:
        """$H(X, Z)$ in nats, exact: an upper bound on the entropy, within $\\log |Z|$ of it."""
        motif = sum(float(-torch.xlogy(m, m).sum()) for m in self.motifs)
        return math.log(self.num_placements) + self.background.entropy() + motif

    def entropy_estimate(self, num_samples: int = 20_000, seed: int = 0) -> tuple[float, float]:
        """$H(X)$ of a whole sequence in nats and its standard error: the exact $H(X, Z)$ minus
        a Monte Carlo average of the exact posterior entropy $H(Z \\mid X = x)$ over
        `num_samples` draws (cached per `(num_samples, seed)`)."""
        key = (int(num_samples), int(seed))
        if key not in self._cached_entropy:
            if num_samples < 2:
                raise ValueError(f"num_samples must be >= 2, got {num_samples}")
            g = torch.Generator().manual_seed(seed)
            posterior = []
            for first in range(0, num_samples, 2048):
                x = self.sample(min(2048, num_samples - first), g)
                log_post = torch.log_softmax(self._log_joint(x), dim=-1)
                posterior.append(-(log_post.exp() * log_post).sum(dim=-1))
            h = torch.cat(posterior)
            stderr = float(h.std() / math.sqrt(h.numel()))
            self._cached_entropy[key] = (self.joint_entropy() - float(h.mean()), stderr)
        return self._cached_entropy[key]

    def entropy_per_token(self, unit: Literal["nats", "bits"] = "nats") -> float:
        """`entropy_estimate()[0] / L` in nats or bits (see `entropy_estimate` for its error)."""
        return _per_token(self.entropy_estimate()[0], self.length, unit)

    def sample(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        """`num` independent sequences, LongTensor `[num, L]`."""
        if num < 0:
            raise ValueError(f"num must be >= 0, got {num}")
        background = self.background.sample(num, generator)
        z = torch.randint(self.num_placements, (num,), generator=generator)
        positions = self._positions[z]  # [num, total width]
        pwm = torch.cat(self.motifs)  # [total width, N]
        motif = sample_categorical(pwm.expand(num, -1, -1), generator)
        x = torch.empty(num, self.length, dtype=torch.long)
        is_motif = torch.zeros(num, self.length, dtype=torch.bool)
        is_motif.scatter_(1, positions, True)
        x.scatter_(1, positions, motif)
        x[~is_motif] = background.reshape(-1)
        return x

    def __repr__(self) -> str:
        return (
            f"PlantedMotifSource(num_tokens={self.num_tokens}, length={self.length}, "
            f"motifs={[m.shape[0] for m in self.motifs]}, spacers={self.spacers}, "
            f"placements={self.num_placements})"
        )


def _dirichlet(alpha: Tensor, generator: torch.Generator) -> Tensor:
    gamma = torch._standard_gamma(alpha, generator=generator).clamp_min(1e-12)
    return gamma / gamma.sum(dim=-1, keepdim=True)


def _order_of(rows: int, n: int) -> int | None:
    if n == 1:
        return 1 if rows == 1 else None
    k, power = 0, 1
    while power < rows:
        power *= n
        k += 1
    return k if power == rows and k >= 1 else None


def _per_token(nats: float, length: int, unit: str) -> float:
    if unit not in ("nats", "bits"):
        raise ValueError(f"unit must be 'nats' or 'bits', got {unit!r}")
    h = nats / length
    return h / math.log(2.0) if unit == "bits" else h


def _check_tokens(x: Tensor, length: int, num_tokens: int) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != length:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must have shape [batch, {length}], got {shape}")
    x = x.long().cpu()
    bad = ((x < 0) | (x >= num_tokens)).nonzero()
    if bad.numel():
        b, i = bad[0].tolist()
        raise ValueError(
            f"x holds token {int(x[b, i])} at [batch {b}, position {i}], outside [0, {num_tokens})"
        )
    return x


def _check_distribution(p: Tensor, name: str) -> None:
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise ValueError(f"{name} must be finite and non-negative")
    sums = p.sum(dim=-1)
    bad = ((sums - 1.0).abs() > 1e-6).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        raise ValueError(f"{name} must sum to 1, but entry {i} sums to {float(sums[i]):.6g}")
