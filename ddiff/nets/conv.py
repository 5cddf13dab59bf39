"""A dilated-convolution score network for short sequences (DNA windows, peptides) on a CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

from ddiff.nets.base import ScoreNet
from ddiff.nets.parameterization import Parameterization, checked_parameterization
from ddiff.nets.transformer import _embed_label, _label_embedding, _modulate, _SigmaEmbedding


class _ConvBlock(nn.Module):
    """adaLN-modulated norm -> dilated convolution -> GELU -> pointwise projection, gated and
    added to the residual stream. The modulation is zero-initialised: the block starts as the
    identity (as DiT's adaLN-Zero blocks do)."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.conv = nn.Conv1d(
            dim, dim, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2
        )
        self.project = nn.Linear(dim, dim)
        self.modulation = nn.Linear(cond_dim, 3 * dim)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        shift, scale, gate = self.modulation(c)[:, None].chunk(3, -1)
        x = _modulate(self.norm(h), shift, scale)
        # GELU over the transposed view. Applying it in the convolution's own [B, C, L] layout
        # trains 1.2x faster on CPU but changes results in their last bits, and with them
        # the documented demos' seed-sensitive numbers (benchmarks/conv_layout.py).
        x = F.gelu(self.conv(x.transpose(1, 2)).transpose(1, 2))
        return h + gate * self.project(x)

    if TYPE_CHECKING:  # `nn.Module.__call__` is untyped.

        def __call__(self, h: Tensor, c: Tensor) -> Tensor: ...


def _check_conv_sizes(
    max_length: int, dim: int, depth: int, kernel_size: int, cycle: int, cond_dim: int
) -> None:
    """The sizes of a dilated-convolution network (`ConvScoreNet`, `ConvClassifierNet`)."""
    for name, value in (("max_length", max_length), ("dim", dim), ("depth", depth)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    if int(cycle) != cycle or cycle < 1 or int(cond_dim) != cond_dim or cond_dim < 1:
        raise ValueError(f"cycle and cond_dim must be positive integers, got {cycle}, {cond_dim}")


def _dilated_blocks(
    dim: int, depth: int, kernel_size: int, cycle: int, cond_dim: int
) -> nn.ModuleList:
    """`depth` adaLN-modulated residual blocks, block k with dilation 2 ** (k % cycle)."""
    return nn.ModuleList(
        _ConvBlock(dim, kernel_size, 2 ** (k % cycle), cond_dim) for k in range(depth)
    )


class ConvScoreNet(ScoreNet):
    r"""Residual blocks of dilated 1-D convolutions with learned absolute positions.

    Block $k$ convolves with kernel size $K$ and dilation $2^{k \bmod m}$ ($m$ = `cycle`), so a
    stack of $m$ blocks sees $1 + (K - 1)(2^m - 1)$ positions: local k-mer structure for far
    fewer operations than attention (the dilated CNNs of ByteNet, Kalchbrenner et al. 2016, and
    CARP, Yang et al. 2022). A learned embedding of each absolute position is added to the
    token embedding, so position-specific signal (a site at a fixed distance from a window's
    end) is direct. The total noise enters through adaLN modulation of every block, as in
    `TransformerScoreNet`, and the output goes through a `Parameterization` (log-scores, or the
    scaled-absorbing form for absorbing graphs), which puts the exact 0 at the current token.

    Args:
        num_states: number of token states S (MASK included for absorbing graphs).
        max_length: the longest sequence the position table covers (with `positions=False`
            there is no table and any length is accepted).
        dim: channels.
        depth: number of residual blocks.
        kernel_size: odd convolution width K.
        cycle: dilations run $1, 2, \dots, 2^{m-1}$ and repeat.
        cond_dim: width of the noise conditioning vector.
        parameterization: maps the head's outputs to log-scores (default: log-scores).
        positions: add a learned embedding of each absolute position (default). False gives a
            translation-equivariant network (up to the zero padding at the ends), the ablation
            of `benchmarks/dna_sweep.py`.
        num_labels: number of class labels C (0, the default: an unconditional network). With
            C > 0 a label embedding of C + 1 rows (the last one the null label, `NULL_LABEL`)
            is added to the noise conditioning vector, $c \leftarrow c + E[\text{label}]$,
            exactly as in `TransformerScoreNet`; it is built after every other parameter, so
            an unconditional network's initial weights, for a seed, do not depend on this
            option's existence.

    Example:
        >>> import torch
        >>> from ddiff.nets import ConvScoreNet
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> net = ConvScoreNet(num_states=5, max_length=16, dim=16, depth=2, cond_dim=16)
        >>> x_t = torch.randint(0, 5, (2, 16))
        >>> log_score = net(x_t, torch.tensor([0.5, 2.0]))
        >>> log_score.shape, bool(log_score.gather(-1, x_t[..., None]).eq(0).all())
        (torch.Size([2, 16, 5]), True)
    """

    def __init__(
        self,
        num_states: int,
        max_length: int,
        dim: int = 64,
        depth: int = 6,
        kernel_size: int = 5,
        cycle: int = 6,
        cond_dim: int = 64,
        parameterization: Parameterization | None = None,
        positions: bool = True,
        num_labels: int = 0,
    ) -> None:
        super().__init__(num_states, num_labels)
        _check_conv_sizes(max_length, dim, depth, kernel_size, cycle, cond_dim)
        parameterization = checked_parameterization(parameterization, num_states)
        self.max_length, self.dim, self.depth = int(max_length), int(dim), int(depth)
        self.kernel_size, self.cycle, self.cond_dim = int(kernel_size), int(cycle), int(cond_dim)
        self.parameterization = parameterization
        self.positions = bool(positions)
        # Construction order fixes the initialisation for a given seed: token and position
        # tables, noise embedding, blocks, final modulation and head, then the label table.
        self.embedding = nn.Embedding(self.num_states, self.dim)
        self.position = nn.Embedding(self.max_length, self.dim) if self.positions else None
        for table in (self.embedding, self.position):
            if table is not None:
                nn.init.normal_(table.weight, std=0.02)
        self.sigma_embedding = _SigmaEmbedding(self.cond_dim)
        self.blocks = _dilated_blocks(
            self.dim, self.depth, self.kernel_size, self.cycle, self.cond_dim
        )
        self.final_norm = nn.LayerNorm(self.dim, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Linear(self.cond_dim, 2 * self.dim)
        self.head = nn.Linear(self.dim, self.num_states)
        for layer in (self.final_modulation, self.head):  # an untrained net outputs zeros
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        # Last: the parameters above are drawn exactly as in a network without labels.
        self.label_embedding = _label_embedding(self.num_labels, self.cond_dim)

    def _forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        return self._scores(x_t, sigma, None)

    def _forward_labelled(self, x_t: Tensor, sigma: Tensor, label: Tensor) -> Tensor:
        return self._scores(x_t, sigma, label)

    def _scores(self, x_t: Tensor, sigma: Tensor, label: Tensor | None) -> Tensor:
        length = x_t.shape[1]
        h = self.embedding(x_t)
        if self.position is not None:
            if length > self.max_length:
                raise ValueError(
                    f"x_t has length {length}, longer than max_length = {self.max_length} of "
                    "the position table; build the network with a larger max_length"
                )
            h = h + self.position.weight[:length]
        c = self.sigma_embedding(sigma)
        if self.label_embedding is not None:
            c = c + _embed_label(self.label_embedding, label, x_t.shape[0]).to(c.dtype)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_modulation(c)[:, None].chunk(2, -1)
        raw = self.head(_modulate(self.final_norm(h), shift, scale))
        return self.parameterization(raw, x_t, sigma)

    def extra_repr(self) -> str:
        return (
            f"num_states={self.num_states}, max_length={self.max_length}, dim={self.dim}, "
            f"depth={self.depth}, kernel_size={self.kernel_size}, cycle={self.cycle}"
            + ("" if self.positions else ", positions=False")
            + (f", num_labels={self.num_labels}" if self.num_labels else "")
        )
