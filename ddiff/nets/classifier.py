"""A classifier of noised sequences, $p_\\phi(c \\mid x_t)$, for classifier guidance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddiff._checks import batch_sigma, check_token_batch
from ddiff.nets.conv import _check_conv_sizes, _dilated_blocks
from ddiff.nets.transformer import (
    PRESETS,
    _add_positions,
    _check_max_length,
    _check_sizes,
    _modulate,
    _SigmaEmbedding,
    _Trunk,
)


class NoisyClassifierNet(nn.Module):
    r"""A transformer classifier of noised sequences: logits of $p_\phi(c \mid x_t, \bar\sigma)$.

    Classifier guidance needs the label's probability given the *noised* sequence,
    $p(c \mid x_t) = \sum_{x_0} p(c \mid x_0)\, p(x_0 \mid x_t)$, at every noise level a sampler
    visits (Dhariwal & Nichol 2021; for discrete diffusion Nisonoff et al. 2024 and Schiff et
    al. 2024). This network is trained for it by cross-entropy on sequences noised by the same
    graph and schedule as the diffusion model (`ddiff.training.ClassifierModule`), whose
    minimiser is exactly that $p(c \mid x_t)$.

    It is `TransformerScoreNet`'s encoder: token embedding (MASK included), the same noise
    embedding of $\log\bar\sigma$ and adaLN-Zero blocks with rotary positions, the final
    modulated LayerNorm and a zero-initialised linear head to C outputs per position, averaged
    over positions (an untrained classifier returns the uniform law).

    **One-hot input.** `x_t` may also be a float tensor `[B, L, S]` (one-hot rows, or any
    point of the simplex): the embedding is then `x_t @ embedding.weight`, which equals the
    lookup on one-hot rows and is differentiable in `x_t`, as
    `ddiff.guidance.ClassifierGuidance(mode="first_order")` needs.

    Args:
        num_states: number of token states S it reads (`graph.num_states`).
        num_labels: number of classes C (>= 2).
        dim: width of the residual stream (as for `TransformerScoreNet`).
        depth: number of transformer blocks.
        heads: attention heads; `dim / heads` must be an even integer.
        cond_dim: width of the noise-conditioning vector.
        mlp_ratio: MLP hidden width as a multiple of `dim`.
        dropout: dropout on each block's attention and MLP outputs.
        max_length: None (the default): rotary positions only. An integer adds a learned
            embedding of each absolute position (sequences up to this length), as
            `TransformerScoreNet(max_length=...)` does: for labels that depend on where a
            signal sits in the window (the reading frame of windows cut in frame). Built
            last, so the other weights, for a seed, are drawn as without it.

    Example:
        >>> import torch
        >>> from ddiff.guidance import select_label
        >>> from ddiff.nets import NoisyClassifierNet
        >>> _ = torch.manual_seed(0)
        >>> net = NoisyClassifierNet.from_preset("tiny", num_states=5, num_labels=2)
        >>> x_t, sigma = torch.tensor([[4, 1, 4]]), torch.tensor([0.5])
        >>> with torch.no_grad():
        ...     net(x_t, sigma)  # zero-initialised head: uniform over the 2 labels
        tensor([[0., 0.]])
        >>> with torch.no_grad():  # the one-label classifier guidance takes
        ...     select_label(net, 1)(x_t, sigma).exp()
        tensor([0.5000])
    """

    def __init__(
        self,
        num_states: int,
        num_labels: int,
        dim: int = 256,
        depth: int = 4,
        heads: int = 4,
        cond_dim: int = 128,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        max_length: int | None = None,
    ) -> None:
        super().__init__()
        _check_max_length(max_length)
        for name, value, low in (("num_states", num_states, 2), ("num_labels", num_labels, 2)):
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        hidden = _check_sizes(dim, depth, heads, cond_dim, mlp_ratio, dropout)
        self.num_states = int(num_states)
        self.num_labels = int(num_labels)
        self.dim, self.depth, self.heads, self.cond_dim = (
            int(dim),
            int(depth),
            int(heads),
            int(cond_dim),
        )
        self.mlp_ratio, self.dropout = float(mlp_ratio), float(dropout)
        self.embedding = nn.Embedding(self.num_states, self.dim)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.sigma_embedding = _SigmaEmbedding(self.cond_dim)
        self.trunk = _Trunk(
            self.dim,
            self.depth,
            self.heads,
            self.cond_dim,
            hidden,
            self.dropout,
            self.num_labels,
            causal=False,
        )
        self.max_length = None if max_length is None else int(max_length)
        self.position: nn.Embedding | None = None
        if self.max_length is not None:  # last: the weights above are drawn as without it
            self.position = nn.Embedding(self.max_length, self.dim)
            nn.init.normal_(self.position.weight, std=0.02)

    @classmethod
    def from_preset(
        cls, name: str, num_states: int, num_labels: int, **overrides: Any
    ) -> NoisyClassifierNet:
        """A classifier of a named size from `PRESETS` (as `TransformerScoreNet.from_preset`)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(num_states, num_labels, **{**PRESETS[name], **overrides})

    if TYPE_CHECKING:  # `nn.Module.__call__` is untyped.

        def __call__(self, x_t: Tensor, sigma: Tensor | float) -> Tensor: ...

    def forward(self, x_t: Tensor, sigma: Tensor | float) -> Tensor:
        """Label logits `[B, C]` of `x_t` (LongTensor `[B, L]`, or float one-hot `[B, L, S]`).

        Raises:
            ValueError: for a bad shape, dtype or token id (the message names the position).
        """
        if x_t.is_floating_point():
            if x_t.dim() != 3 or x_t.shape[-1] != self.num_states or x_t.shape[1] < 1:
                raise ValueError(
                    f"a one-hot x_t must have shape [batch, length, {self.num_states}], got "
                    f"{list(x_t.shape)}"
                )
            h = x_t.to(self.embedding.weight.dtype) @ self.embedding.weight
        else:
            x_t = check_token_batch(x_t, self.num_states, "x_t", "num_states", "the classifier")
            h = self.embedding(x_t)
        if self.position is not None:
            h = _add_positions(h, self.position)
        sigma = batch_sigma(sigma, h[..., 0])[:, 0]
        return self._features(h, sigma)

    def _features(self, h: Tensor, sigma: Tensor) -> Tensor:
        """Label logits `[B, C]` of embedded (and position-added) inputs `h` `[B, L, dim]`."""
        return self.trunk(h, self.sigma_embedding(sigma)).mean(dim=1)

    def log_prob(self, x_t: Tensor, sigma: Tensor | float) -> Tensor:
        r"""$\log p_\phi(c \mid x_t)$ for every label, `[B, C]` (float32 or wider)."""
        logits = self(x_t, sigma)
        return F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)

    def extra_repr(self) -> str:
        return (
            f"num_states={self.num_states}, num_labels={self.num_labels}, dim={self.dim}, "
            f"depth={self.depth}, heads={self.heads}, cond_dim={self.cond_dim}"
            + (f", max_length={self.max_length}" if self.max_length is not None else "")
        )


class ConvClassifierNet(NoisyClassifierNet):
    r"""A dilated-convolution classifier of noised sequences (`ConvScoreNet`'s blocks).

    Token embedding (a float one-hot `[B, L, S]` input is multiplied into it, as in
    `NoisyClassifierNet`), a learned embedding of each absolute position, adaLN-modulated
    residual blocks of dilated convolutions (dilation $2^{k \bmod m}$), a modulated final norm
    and a zero-initialised linear head to C outputs per position, averaged over positions. Local
    k-mer and reading-frame signal is what it sees first, for fewer operations than attention.

    Args:
        num_states: number of token states S (`graph.num_states`).
        num_labels: number of classes C (>= 2).
        max_length: the longest sequence the position table covers.
        dim: channels.
        depth: number of residual blocks.
        kernel_size: odd convolution width.
        cycle: dilations run $1, 2, \dots, 2^{m-1}$ and repeat.
        cond_dim: width of the noise conditioning.

    Example:
        >>> import torch
        >>> from ddiff.nets import ConvClassifierNet
        >>> net = ConvClassifierNet(num_states=5, num_labels=2, max_length=8, dim=8, depth=2)
        >>> with torch.no_grad():  # zero-initialised head: uniform over the labels
        ...     net(torch.tensor([[4, 1, 4]]), torch.tensor([0.5]))
        tensor([[0., 0.]])
    """

    def __init__(
        self,
        num_states: int,
        num_labels: int,
        max_length: int,
        dim: int = 64,
        depth: int = 4,
        kernel_size: int = 5,
        cycle: int = 4,
        cond_dim: int = 64,
    ) -> None:
        nn.Module.__init__(self)
        for name, value in (("num_states", num_states), ("num_labels", num_labels)):
            if isinstance(value, bool) or int(value) != value or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
        _check_conv_sizes(max_length, dim, depth, kernel_size, cycle, cond_dim)
        self.num_states, self.num_labels = int(num_states), int(num_labels)
        self.dim, self.depth, self.cond_dim = int(dim), int(depth), int(cond_dim)
        self.kernel_size, self.cycle = int(kernel_size), int(cycle)
        self.max_length = int(max_length)
        self.embedding = nn.Embedding(self.num_states, self.dim)
        self.position = nn.Embedding(self.max_length, self.dim)
        for table in (self.embedding, self.position):
            nn.init.normal_(table.weight, std=0.02)
        self.sigma_embedding = _SigmaEmbedding(self.cond_dim)
        self.blocks = _dilated_blocks(
            self.dim, self.depth, self.kernel_size, self.cycle, self.cond_dim
        )
        self.final_norm = nn.LayerNorm(self.dim, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Linear(self.cond_dim, 2 * self.dim)
        self.head = nn.Linear(self.dim, self.num_labels)
        for layer in (self.final_modulation, self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _features(self, h: Tensor, sigma: Tensor) -> Tensor:
        c = self.sigma_embedding(sigma)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_modulation(c)[:, None].chunk(2, -1)
        return self.head(_modulate(self.final_norm(h), shift, scale)).mean(dim=1)

    def extra_repr(self) -> str:
        return (
            f"num_states={self.num_states}, num_labels={self.num_labels}, "
            f"max_length={self.max_length}, dim={self.dim}, depth={self.depth}, "
            f"kernel_size={self.kernel_size}, cycle={self.cycle}"
        )
