"""The SEDD reference network (DDiT) as a ddiff `ScoreNet`, parameter for parameter."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddiff.nets import LogScoreParameterization, Parameterization, ScoreNet
from ddiff.nets._sigma import SIGMA_MAX
from ddiff.nets.rotary import apply_rotary

__all__ = ["FREQUENCY_EMBEDDING_SIZE", "SeddScoreNet"]

FREQUENCY_EMBEDDING_SIZE = 256
"""Sinusoidal features of the total noise in the reference (`TimestepEmbedder`'s default)."""

_MAX_PERIOD = 10_000.0
_ROTARY_BASE = 10_000.0
_NORM_EPS = 1e-5  # torch's default, which the reference's LayerNorm uses


# The submodule and parameter names below are the reference's (`vocab_embed.embedding`,
# `blocks.0.attn_qkv.weight`, ...) and they are registered in the reference's order: its
# checkpoints then load with `load_state_dict(strict=True)`, and the EMA's `shadow_params` (a
# list in the order of the trainable parameters) line up with `named_parameters()`.


class _LayerNorm(nn.Module):
    """Layer norm in float32 with a learned weight and no bias (the reference's `LayerNorm`)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.float(), [x.shape[-1]], eps=_NORM_EPS) * self.weight


class _TokenEmbedding(nn.Module):
    def __init__(self, dim: int, num_states: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(num_states, dim))
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        return self.embedding[x]


class _SigmaEmbedding(nn.Module):
    r"""Total noise `[B]` -> `[B, cond_dim]`: $(\cos \bar\sigma\omega_j, \sin \bar\sigma\omega_j)$
    with $\omega_j = 10^{-4 j / 128}$, $j < 128$, then Linear-SiLU-Linear (the caller applies
    the outer SiLU). The features are of $\bar\sigma$ itself, not of $\log\bar\sigma$."""

    def __init__(self, cond_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(FREQUENCY_EMBEDDING_SIZE, cond_dim),
            nn.SiLU(),
            nn.Linear(cond_dim, cond_dim),
        )

    def forward(self, sigma: Tensor) -> Tensor:
        half = FREQUENCY_EMBEDDING_SIZE // 2
        exponent = torch.arange(half, dtype=torch.float32, device=sigma.device) / half
        freqs = torch.exp(-math.log(_MAX_PERIOD) * exponent)
        angles = sigma[:, None].float() * freqs[None]
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        return self.mlp(features.to(next(self.mlp.parameters()).dtype))


class _Rotary(nn.Module):
    """The rotary tables from the `inv_freq` buffer the reference saves in its state dict."""

    inv_freq: Tensor

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        channels = torch.arange(0, head_dim, 2).float() / head_dim
        self.register_buffer("inv_freq", 1.0 / (_ROTARY_BASE**channels))

    def forward(self, length: int) -> tuple[Tensor, Tensor]:
        positions = torch.arange(length, device=self.inv_freq.device).type_as(self.inv_freq)
        angles = torch.outer(positions, self.inv_freq)
        angles = torch.cat([angles, angles], dim=-1)  # channel pairs (j, j + d/2)
        return angles.cos(), angles.sin()


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1.0 + scale) + shift


class _Block(nn.Module):
    """DDiT block: adaLN-modulated attention and MLP, each added back through a gate."""

    def __init__(self, dim: int, heads: int, cond_dim: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = _LayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.dropout1 = nn.Dropout(dropout)
        self.norm2 = _LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(approximate="tanh"),
            nn.Linear(mlp_ratio * dim, dim),
        )
        self.dropout2 = nn.Dropout(dropout)
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * dim)
        nn.init.zeros_(self.adaLN_modulation.weight)
        nn.init.zeros_(self.adaLN_modulation.bias)

    def forward(self, h: Tensor, c: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        # The reference's chunk order: shift, scale, gate for attention, then for the MLP.
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c)[:, None].chunk(
            6, dim=-1
        )
        b, length, dim = h.shape
        a = _modulate(self.norm1(h), shift1, scale1)
        qkv = self.attn_qkv(a).view(b, length, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, L, head_dim]
        # Queries and keys rotate, values do not (the reference sets cos = 1, sin = 0 for v).
        q, k = (
            apply_rotary(q, cos.to(q.dtype), sin.to(q.dtype)),
            apply_rotary(k, cos.to(k.dtype), sin.to(k.dtype)),
        )
        # Exact non-causal softmax attention, scale 1/sqrt(head_dim): what the reference's
        # flash-attn kernel computes.
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, length, dim)
        h = h + gate1 * self.dropout1(self.attn_out(a))
        m = self.mlp(_modulate(self.norm2(h), shift2, scale2))
        return h + gate2 * self.dropout2(m)


class _OutputLayer(nn.Module):
    def __init__(self, dim: int, num_states: int, cond_dim: int) -> None:
        super().__init__()
        self.norm_final = _LayerNorm(dim)
        self.linear = nn.Linear(dim, num_states)
        self.adaLN_modulation = nn.Linear(cond_dim, 2 * dim)
        for layer in (self.linear, self.adaLN_modulation):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c)[:, None].chunk(2, dim=-1)
        return self.linear(_modulate(self.norm_final(h), shift, scale))


class SeddScoreNet(ScoreNet):
    r"""The network of the SEDD reference code (its `SEDD` / DDiT transformer), as a `ScoreNet`.

    Lou, Meng & Ermon, *Discrete Diffusion Modeling by Estimating the Ratios of the Data
    Distribution*, ICML 2024; github.com/louaaron/Score-Entropy-Discrete-Diffusion,
    `model/transformer.py`. The same parameters under the same names, the same computation:

    - the total noise $\bar\sigma$ (not the time) is embedded by 256 sinusoids
      $\cos(\bar\sigma\omega_j), \sin(\bar\sigma\omega_j)$, $\omega_j = 10^{-4j/128}$, then
      Linear-SiLU-Linear-SiLU into the conditioning vector $c$;
    - each block: $h \mathrel{+}= g_1 \odot \mathrm{Attn}(\mathrm{mod}(\mathrm{LN}(h); s_1, a_1))$,
      $h \mathrel{+}= g_2 \odot \mathrm{MLP}(\mathrm{mod}(\mathrm{LN}(h); s_2, a_2))$ with
      $\mathrm{mod}(x; s, a) = x (1 + a) + s$ and
      $(s_1, a_1, g_1, s_2, a_2, g_2) = W c + b$ in that order (adaLN);
      LN is a float32 layer norm ($\epsilon = 10^{-5}$) with a weight and no bias;
      attention is bidirectional, with rotary embeddings on queries and keys (channel pairs
      $(j, j + d/2)$, $\theta_j = 10^{4 \cdot (-2j/d)}$, read from the saved `inv_freq`);
    - output: $W_o\, \mathrm{mod}(\mathrm{LN}(h); s, a) + b_o$ (raw, `[B, L, S]`), then the
      `parameterization`: for an absorbing graph with `scale_by_sigma` (SEDD's default) it is
      `ScaledAbsorbingParameterization`, $\mathrm{raw} - \log(e^{\bar\sigma} - 1) - \log N$;
      otherwise the raw output is the log-score. The entry at the current token is 0.

    The reference runs its blocks under CUDA bfloat16 autocast; this class computes in the
    dtype of its weights (float32 by default), so on a CPU it equals the reference run on a CPU
    to float32 rounding (within 1e-5 on the test vectors, `tests/interop`). Unlike the
    reference it accepts $\bar\sigma = \infty$: the sinusoids see $\bar\sigma$ clamped to
    $10^4$ (a level no schedule of the reference reaches) and the parameterisation clamps as
    ddiff's do, so the output is finite. Dropout acts in training mode only, as in the reference.

    Load trained weights with `ddiff.interop.load_sedd`; this constructor gives the reference's
    initialisation (adaLN and output layers at zero).

    Args:
        num_states: S, the states the network reads and scores (`graph.num_states`: the
            reference's `tokens`, plus one for MASK with an absorbing graph).
        dim: width (`model.hidden_size`).
        depth: number of blocks (`model.n_blocks`).
        heads: attention heads (`model.n_heads`); `dim / heads` must be even.
        cond_dim: width of the noise conditioning (`model.cond_dim`).
        mlp_ratio: MLP width over `dim` (4 in the reference).
        dropout: dropout after attention and MLP in training mode (`model.dropout`).
        parameterization: how raw outputs become log-scores (default: the raw output is the
            log-score; `ScaledAbsorbingParameterization(graph)` for `scale_by_sigma`).

    Raises:
        ValueError: if a size is not a positive integer, `dim / heads` is not even, or the
            parameterisation is for another number of states.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph
        >>> from ddiff.interop import SeddScoreNet
        >>> from ddiff.nets import ScaledAbsorbingParameterization
        >>> graph = AbsorbingGraph(5)
        >>> _ = torch.manual_seed(0)
        >>> net = SeddScoreNet(
        ...     graph.num_states, dim=32, depth=2, heads=4, cond_dim=16,
        ...     parameterization=ScaledAbsorbingParameterization(graph),
        ... ).eval()
        >>> x_t = torch.tensor([[5, 5, 2, 5]])  # MASK, MASK, 2, MASK
        >>> log_score = net(x_t, torch.tensor([1.0])).detach()
        >>> log_score.shape, float(log_score[0, 2, 2])  # [batch, length, states]; 0 at x_t
        (torch.Size([1, 4, 6]), 0.0)
        >>> # Zero-initialised output layer: log(1 / N) - log(e^sigma - 1) at a MASK, N = 5.
        >>> round(float(log_score[0, 0, 0]), 4)
        -2.1508
    """

    def __init__(
        self,
        num_states: int,
        *,
        dim: int,
        depth: int,
        heads: int,
        cond_dim: int,
        mlp_ratio: int = 4,
        dropout: float = 0.1,
        parameterization: Parameterization | None = None,
    ) -> None:
        super().__init__(num_states)
        for name, value in (
            ("dim", dim),
            ("depth", depth),
            ("heads", heads),
            ("cond_dim", cond_dim),
            ("mlp_ratio", mlp_ratio),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if dim % heads or (dim // heads) % 2:
            raise ValueError(
                f"dim / heads must be an even integer (rotary embeddings rotate channel pairs), "
                f"got dim = {dim}, heads = {heads}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        parameterization = parameterization or LogScoreParameterization()
        wanted = parameterization.num_states
        if wanted is not None and wanted != num_states:
            raise ValueError(
                f"{parameterization!r} is for {wanted} states but the network has {num_states}"
            )
        self.dim, self.depth, self.heads, self.cond_dim = dim, depth, heads, cond_dim
        self.mlp_ratio, self.dropout = mlp_ratio, dropout
        self.parameterization = parameterization
        self.vocab_embed = _TokenEmbedding(dim, num_states)
        self.sigma_map = _SigmaEmbedding(cond_dim)
        self.rotary_emb = _Rotary(dim // heads)
        self.blocks = nn.ModuleList(
            _Block(dim, heads, cond_dim, mlp_ratio, dropout) for _ in range(depth)
        )
        self.output_layer = _OutputLayer(dim, num_states, cond_dim)

    def raw_output(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        """The output layer's values `[B, L, S]` before the parameterisation (validated inputs)."""
        h = self.vocab_embed(x_t)
        c = F.silu(self.sigma_map(sigma.clamp(max=SIGMA_MAX)))
        cos, sin = self.rotary_emb(x_t.shape[1])
        for block in self.blocks:
            h = block(h, c, cos, sin)
        out: Tensor = self.output_layer(h, c)
        return out

    def _forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        return self.parameterization(self.raw_output(x_t, sigma), x_t, sigma)

    def extra_repr(self) -> str:
        return (
            f"num_states={self.num_states}, dim={self.dim}, depth={self.depth}, "
            f"heads={self.heads}, cond_dim={self.cond_dim}, mlp_ratio={self.mlp_ratio}, "
            f"dropout={self.dropout}, parameterization={self.parameterization!r}"
        )
