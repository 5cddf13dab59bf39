"""Adaptive importance sampling of the training times."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ddiff.losses.likelihood import _T_MARGIN


class ImportanceTimes(nn.Module):
    r"""Training times drawn where the loss varies most, each weighted by 1 / its density.

    The training loss is a one-sample Monte Carlo estimate of the bound's time integral
    $\int_0^1 f(t)\,dt$ (`bound_integrand`), and its variance is not spread evenly over t: for
    an absorbing graph the number of masked positions at time t is Binomial(L, t) and the
    integrand weighs them by about 1/t, so its standard deviation grows like
    $\sqrt{(1 - t)/t}$ as $t \to 0$ (`benchmarks/time_importance.py --variance` measures it).
    This sampler keeps running estimates of the integrand's mean and second moment in `bins`
    equal time bins, and draws t from the piecewise-constant density

    $$q(t) = \text{bins} \cdot \Bigl((1 - m)\,\frac{s_b}{\sum_c s_c} + \frac{m}{\text{bins}}
      \Bigr), \qquad t \in \text{bin } b,$$

    with $s_b$ the integrand's standard deviation in bin b and m = `uniform_share`. Each time
    is weighted by $1/q(t)$, so the weighted loss is still an unbiased estimate of the
    integral (the map from a uniform u to t has slope exactly $1/q(t)$); the uniform share
    keeps $q \ge m$, the weights at most $1/m$, and every time reachable. The uniforms come
    stratified over the batch and go through q's inverse CDF, so bin b gets a share $q_b$ of
    the batch: with $q_b \propto s_b$ that is Neyman allocation, the variance-optimal share
    for a stratified estimate (with stratified draws the differences between the bins' means
    cost nothing, so this is the target rather than Nichol & Dhariwal's $\sqrt{E[f^2]}$ for
    i.i.d. draws, *Improved Denoising Diffusion Probabilistic Models*, ICML 2021).

    Until `warmup_steps` updates have been made, q is uniform: the draws are then exactly the
    stratified default's. The estimates are buffers of the module, so checkpoints keep them and
    a resumed run goes on with them. In a distributed run every update sums the bins over the
    ranks (`torch.distributed.all_reduce`), so every rank folds in the whole global batch and
    keeps the same proposal: each rank must call `update` at every step, as
    `DiffusionModule` does.

    Args:
        bins: number of equal time bins (>= 1).
        uniform_share: m in (0, 1], the uniform part of the proposal (1 gives plain stratified
            draws).
        decay: weight of the old estimate in each update, in [0, 1).
        warmup_steps: updates before the proposal leaves the uniform one (>= 0).

    Example:
        >>> import torch
        >>> from ddiff.losses import ImportanceTimes
        >>> times = ImportanceTimes(bins=4, warmup_steps=0)
        >>> t = torch.tensor([0.1, 0.3, 0.6, 0.9], dtype=torch.float64)
        >>> times.update(t, torch.tensor([0.0, 1.0, 1.0, 1.0]))  # first values: the means
        >>> times.update(t, torch.tensor([8.0, 1.0, 1.0, 1.0]))  # only bin 0 varies
        >>> times.proposal()  # 0.8 of the mass on bin 0, plus the uniform 0.2
        tensor([0.8500, 0.0500, 0.0500, 0.0500], dtype=torch.float64)
        >>> t, weight = times.draw(torch.tensor([0.5], dtype=torch.float64))
        >>> round(t.item(), 4), round(weight.item(), 4)  # u = 0.5 lies in bin 0
        (0.1471, 0.2941)
    """

    mean: Tensor
    second_moment: Tensor
    counts: Tensor
    num_updates: Tensor

    def __init__(
        self,
        bins: int = 32,
        uniform_share: float = 0.2,
        decay: float = 0.98,
        warmup_steps: int = 100,
    ) -> None:
        super().__init__()
        if isinstance(bins, bool) or int(bins) != bins or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins!r}")
        if not 0.0 < uniform_share <= 1.0:
            raise ValueError(f"uniform_share must be in (0, 1], got {uniform_share!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        if isinstance(warmup_steps, bool) or int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
        self.bins, self.uniform_share = int(bins), float(uniform_share)
        self.decay, self.warmup_steps = float(decay), int(warmup_steps)
        self.register_buffer("mean", torch.zeros(self.bins, dtype=torch.float64))
        self.register_buffer("second_moment", torch.zeros(self.bins, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(self.bins, dtype=torch.float64))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def proposal(self) -> Tensor:
        """The probability of each bin, `[bins]` float64 (uniform during the warm-up)."""
        uniform = torch.full_like(self.mean, 1.0 / self.bins)
        known = self.counts > 0
        if int(self.num_updates) < self.warmup_steps or not bool(known.any()):
            return uniform
        spread = self._spread()
        spread = torch.where(known, spread, spread[known].mean())
        total = spread.sum()
        if not bool(torch.isfinite(total)) or float(total) <= 0.0:
            return uniform
        return (1.0 - self.uniform_share) * spread / total + self.uniform_share * uniform

    def _spread(self) -> Tensor:
        """What the proposal follows in each bin: the integrand's standard deviation."""
        return (self.second_moment - self.mean**2).clamp(min=0.0).sqrt()

    def draw(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """Map uniforms `u` in [0, 1) (stratified, from `sample_times`) to times and weights.

        Returns `(t, weight)`, both float64 and shaped like `u`: t in [0, 1) with density q,
        and weight = 1 / q(t).
        """
        q = self.proposal().to(u.device)
        upper = torch.cumsum(q, 0)
        lower = torch.cat([upper.new_zeros(1), upper[:-1]])
        u = u.to(torch.float64)
        b = torch.searchsorted(upper, u, right=True).clamp(max=self.bins - 1)
        within = ((u - lower[b]) / q[b]).clamp(0.0, 1.0)
        t = ((b + within) / self.bins).clamp(max=1.0 - _T_MARGIN)
        return t, 1.0 / (self.bins * q[b])

    @torch.no_grad()
    def update(self, t: Tensor, values: Tensor) -> None:
        """Fold the integrand's values `[B]` at times `t` `[B]` into the running estimates."""
        if t.shape != values.shape or t.dim() != 1:
            raise ValueError(
                f"t and values must both have shape [batch], got {list(t.shape)} and "
                f"{list(values.shape)}"
            )
        b = (t.to(torch.float64) * self.bins).long().clamp(0, self.bins - 1).to(self.mean.device)
        values = values.detach().to(device=self.mean.device, dtype=torch.float64)
        sums = torch.zeros(3, self.bins, dtype=torch.float64, device=self.mean.device)
        sums[0].index_add_(0, b, torch.ones_like(values))
        sums[1].index_add_(0, b, values)
        sums[2].index_add_(0, b, values**2)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Every rank folds in the whole global batch, so all keep the same proposal.
            torch.distributed.all_reduce(sums)
        counts = sums[0]
        seen = counts > 0
        fresh = seen & (self.counts == 0)
        for moment, total in ((self.mean, sums[1]), (self.second_moment, sums[2])):
            batch = total / counts.clamp(min=1.0)
            blended = self.decay * moment + (1.0 - self.decay) * batch
            moment.copy_(torch.where(fresh, batch, torch.where(seen, blended, moment)))
        self.counts += counts
        self.num_updates += 1

    def extra_repr(self) -> str:
        return (
            f"bins={self.bins}, uniform_share={self.uniform_share}, decay={self.decay}, "
            f"warmup_steps={self.warmup_steps}"
        )
