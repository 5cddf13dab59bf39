"""A bidirectional diffusion transformer (DiT-style, adaLN + rotary) as in SEDD."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddiff.nets._sigma import clamp_sigma
from ddiff.nets.base import ScoreNet
from ddiff.nets.parameterization import Parameterization, checked_parameterization
from ddiff.nets.rotary import apply_rotary, rotary_cos_sin

PRESETS: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        # CPU tests and toy problems.
        "tiny": MappingProxyType({"dim": 64, "depth": 2, "heads": 2, "cond_dim": 64}),
        # SEDD-small (GPT-2 small sized): ~92M non-embedding parameters.
        "small": MappingProxyType({"dim": 768, "depth": 12, "heads": 12, "cond_dim": 128}),
        # SEDD-medium (GPT-2 medium sized): ~322M non-embedding parameters.
        "medium": MappingProxyType({"dim": 1024, "depth": 24, "heads": 16, "cond_dim": 128}),
    }
)
"""Named sizes for `TransformerScoreNet.from_preset` (read-only)."""

# Sinusoidal features of log(sigma): 128 frequencies, log-spaced from 1/16 to 16 radians per unit
# of log(sigma). The slowest stays monotone over the whole clamp range [1e-8, 1e4] (log sigma in
# [-18.4, 9.2]); the fastest has a period of 0.39 (a factor 1.5 in sigma).
_SIGMA_FREQUENCIES = 128
_SIGMA_FREQ_RANGE = (1.0 / 16.0, 16.0)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    # adaLN: a per-sequence affine map of the normalised activations, predicted from sigma.
    return x * (1.0 + scale) + shift


def _check_sizes(
    dim: int, depth: int, heads: int, cond_dim: int, mlp_ratio: float, dropout: float
) -> int:
    """Validate a transformer's size arguments (internal); return the MLP hidden width."""
    for name, value in (
        ("dim", dim),
        ("depth", depth),
        ("heads", heads),
        ("cond_dim", cond_dim),
    ):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if dim % heads or (dim // heads) % 2:
        raise ValueError(
            f"dim / heads must be an even integer (rotary embeddings rotate channel pairs), "
            f"got dim = {dim}, heads = {heads}"
        )
    hidden = round(mlp_ratio * dim)
    if not mlp_ratio > 0 or hidden < 1:
        raise ValueError(f"mlp_ratio must be > 0 (MLP width >= 1), got {mlp_ratio!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    return hidden


class _SigmaEmbedding(nn.Module):
    """sigma `[B]` -> conditioning vector `[B, cond_dim]`: sinusoids of log sigma, then an MLP."""

    def __init__(self, cond_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2 * _SIGMA_FREQUENCIES, cond_dim)
        self.fc2 = nn.Linear(cond_dim, cond_dim)

    def forward(self, sigma: Tensor) -> Tensor:
        log_sigma = torch.log(clamp_sigma(sigma))
        lo, hi = _SIGMA_FREQ_RANGE
        freqs = torch.logspace(
            math.log10(lo),
            math.log10(hi),
            _SIGMA_FREQUENCIES,
            dtype=log_sigma.dtype,
            device=log_sigma.device,
        )
        angles = log_sigma[:, None] * freqs[None, :]
        features = torch.cat([angles.cos(), angles.sin()], dim=-1)
        hidden = F.silu(self.fc1(features.to(self.fc1.weight.dtype)))
        return F.silu(self.fc2(hidden))


class _Block(nn.Module):
    """Pre-norm transformer block with adaLN-Zero modulation (shift, scale, gate) x 2.

    `causal=True` masks attention to earlier positions (and the position itself), for the
    autoregressive baseline; the diffusion backbone attends in both directions.
    """

    def __init__(
        self, dim: int, heads: int, cond_dim: int, hidden: int, dropout: float, causal: bool = False
    ) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(approximate="tanh"),
            nn.Linear(hidden, dim),
        )
        self.dropout = nn.Dropout(dropout)
        self.modulation = nn.Linear(cond_dim, 6 * dim)
        # adaLN-Zero: gates start at 0, so the block starts as the identity.
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: Tensor, c: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, None].chunk(6, -1)
        b, length, dim = h.shape
        a = _modulate(self.norm1(h), shift1, scale1)
        qkv = self.qkv(a).view(b, length, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, L, head_dim]
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        a = a.transpose(1, 2).reshape(b, length, dim)
        h = h + gate1 * self.dropout(self.attn_out(a))
        m = self.mlp(_modulate(self.norm2(h), shift2, scale2))
        return h + gate2 * self.dropout(m)


class _Trunk(nn.Module):
    """The part both transformers share: blocks, final adaLN-modulated norm and output head.

    Maps embedded tokens `h` `[B, L, dim]` and a conditioning vector `c` `[B, cond_dim]` to raw
    outputs `[B, L, out_features]`. The final modulation and the head are zero-initialised, so
    an untrained trunk outputs zeros. `TransformerScoreNet` (bidirectional) and
    `CausalTransformer` (`causal=True`) compose it after their own input embeddings.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        cond_dim: int,
        hidden: int,
        dropout: float,
        out_features: int,
        *,
        causal: bool,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.blocks = nn.ModuleList(
            _Block(dim, heads, cond_dim, hidden, dropout, causal=causal) for _ in range(depth)
        )
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Linear(cond_dim, 2 * dim)
        self.head = nn.Linear(dim, out_features)
        for layer in (self.final_modulation, self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        cos, sin = rotary_cos_sin(
            h.shape[1],
            h.shape[-1] // self.heads,
            device=h.device,
            dtype=torch.promote_types(h.dtype, torch.float32),
        )
        for block in self.blocks:
            h = block(h, c, cos, sin)
        shift, scale = self.final_modulation(c)[:, None].chunk(2, -1)
        return self.head(_modulate(self.final_norm(h), shift, scale))

    if TYPE_CHECKING:  # `nn.Module.__call__` is untyped.

        def __call__(self, h: Tensor, c: Tensor) -> Tensor: ...


def _label_embedding(num_labels: int, cond_dim: int) -> nn.Embedding | None:
    """C + 1 rows (the last: the null label) added to the conditioning vector; None for C = 0."""
    if num_labels == 0:
        return None
    table = nn.Embedding(num_labels + 1, cond_dim)
    nn.init.normal_(table.weight, std=0.02)
    return table


def _embed_label(table: nn.Embedding, label: Tensor | None, batch: int) -> Tensor:
    """Rows `[B, cond_dim]` for validated labels (`NULL_LABEL` or None: the null row)."""
    null = table.num_embeddings - 1
    if label is None:
        index = torch.full((batch,), null, dtype=torch.long, device=table.weight.device)
    else:
        index = torch.where(label < 0, null, label)
    return table(index)


# The trunk's parameters sat at the top level of both networks until they became one module:
# state dicts saved then name them `blocks.<k>...`, `final_modulation...`, `head...`.
_LEGACY_TRUNK_KEYS = ("blocks.", "final_modulation.", "head.")


def _load_legacy_trunk_keys(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any
) -> None:
    """A load-state-dict pre-hook: rename a legacy key `<prefix>head.weight` to
    `<prefix>trunk.head.weight` (and likewise for the blocks and the final modulation)."""
    for key in list(state_dict):
        local = key[len(prefix) :]
        if key.startswith(prefix) and local.startswith(_LEGACY_TRUNK_KEYS):
            state_dict[f"{prefix}trunk.{local}"] = state_dict.pop(key)


class TransformerScoreNet(ScoreNet):
    r"""Bidirectional diffusion transformer with adaLN noise conditioning and rotary positions.

    The SEDD backbone (Lou, Meng & Ermon, ICML 2024): a DiT (Peebles & Xie, *Scalable
    Diffusion Models with Transformers*, ICCV 2023) over token sequences, with rotary position
    embeddings (Su et al., *RoFormer*, 2021) and no causal mask.

    - **Input**: token embedding `[S, dim]` (MASK included for absorbing graphs).
    - **Noise conditioning**: $c = \mathrm{SiLU}(\mathrm{MLP}(\phi(\log\bar\sigma)))$, where
      $\phi$ is 128 sines and 128 cosines of $\log\bar\sigma$ at frequencies log-spaced in
      $[1/16, 16]$. The log (not $\bar\sigma$ itself, as in the SEDD code) resolves every noise
      level from $10^{-5}$ to 20 on the same footing; $\bar\sigma$ is clamped to
      $[10^{-8}, 10^4]$ first, so 0 and inf are finite.
    - **Blocks** (`depth` of them): pre-LayerNorm (no affine) self-attention and GELU MLP, each
      modulated by adaLN-Zero, $h \leftarrow h + g \odot \mathrm{Drop}(F(\mathrm{LN}(h)(1 + a) + b))$
      with $(a, b, g)$ linear in $c$ and zero-initialised, so every block starts as the identity.
      Attention is `torch.nn.functional.scaled_dot_product_attention` with rotary queries and
      keys (any backend torch picks; no flash-attn dependency).
    - **Output**: final adaLN-modulated LayerNorm and a zero-initialised linear head to S raw
      outputs (an untrained net outputs raw zeros), then the `parameterization` (default
      `LogScoreParameterization`; `ScaledAbsorbingParameterization` is SEDD's choice for
      absorbing graphs), which sets the current token's entry to exactly 0.

    Works under `torch.autocast(device, dtype=torch.bfloat16)` (the matmuls and attention run in
    bf16; the residual stream, LayerNorms, rotary angles and sigma features stay in float32; the
    head's output is bf16 unless the parameterisation upcasts) and as a float64 module
    (`.double()`).

    Args:
        num_states: number of token states S (for absorbing graphs `graph.num_states`).
        dim: width of the residual stream.
        depth: number of transformer blocks.
        heads: attention heads; `dim / heads` must be an even integer (rotary pairs).
        cond_dim: width of the noise-conditioning vector.
        mlp_ratio: MLP hidden width as a multiple of `dim`.
        dropout: dropout on each block's attention and MLP outputs (0 to disable).
        parameterization: raw outputs to log-scores; None means `LogScoreParameterization()`.
        time_conditioning: read the noise level (default). False gives a **time-agnostic**
            network: no noise embedding, the blocks are modulated by learned constants only.
            With `ScaledAbsorbingParameterization` that is RADD (Ou et al., *Your Absorbing
            Discrete Diffusion Secretly Models the Conditional Distributions of Clean Data*,
            2024): the network models $p_0(x^i \mid$ unmasked tokens$)$ and its log-scores
            depend on $\bar\sigma$ only through $-\log(e^{\bar\sigma} - 1)$, the exact
            score's dependence, so a sampler's `cache=True` reuses its outputs exactly.
        num_labels: number of class labels C (0, the default: an unconditional network). With
            C > 0 a label embedding of C + 1 rows (the last one the null label, `NULL_LABEL`)
            is added to the conditioning vector, $c \leftarrow c + E[\text{label}]$, as DiT
            adds its class embedding (Peebles & Xie, ICCV 2023), so `net(x_t, sigma,
            label=...)` is a conditional model and the null label the unconditional one that
            classifier-free guidance mixes in (Ho & Salimans 2022; trained with label dropout,
            `ddiff.training.DiffusionModule(label_dropout=...)`). The embedding is built after
            every other parameter, so an unconditional network's initial weights, for a seed,
            do not depend on this option's existence.
        max_length: None (the default): positions enter through the rotary embeddings only.
            An integer adds a learned embedding of each absolute position (sequences up to
            this length) to the token embedding, as `ConvScoreNet` does, so position-specific
            signal is direct (the ablation of `benchmarks/dna_sweep.py`). Built after the
            trunk, so the other weights, for a seed, are drawn as without it.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph
        >>> from ddiff.nets import ScaledAbsorbingParameterization, TransformerScoreNet
        >>> _ = torch.manual_seed(0)
        >>> graph = AbsorbingGraph(4)
        >>> net = TransformerScoreNet.from_preset(
        ...     "tiny", graph.num_states, parameterization=ScaledAbsorbingParameterization(graph)
        ... )
        >>> x_t, sigma = torch.tensor([[4, 1, 4]]), torch.tensor([0.5])  # MASK, token 1, MASK
        >>> with torch.no_grad():
        ...     log_score = net(x_t, sigma)
        >>> log_score.shape
        torch.Size([1, 3, 5])
        >>> log_score[0, :, 4], log_score[0, 1, 1]  # 0 at the current token (MASK, then 1)
        (tensor([ 0.0000, -0.9535,  0.0000]), tensor(0.))
        >>> net.raw_output(x_t, sigma).abs().max().item()  # zero-initialised head: raw zeros
        0.0
    """

    def __init__(
        self,
        num_states: int,
        dim: int = 256,
        depth: int = 4,
        heads: int = 4,
        cond_dim: int = 128,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        parameterization: Parameterization | None = None,
        time_conditioning: bool = True,
        num_labels: int = 0,
        max_length: int | None = None,
    ) -> None:
        super().__init__(num_states, num_labels)
        _check_max_length(max_length)
        hidden = _check_sizes(dim, depth, heads, cond_dim, mlp_ratio, dropout)
        parameterization = checked_parameterization(parameterization, num_states)
        self.dim = int(dim)
        self.depth = int(depth)
        self.heads = int(heads)
        self.cond_dim = int(cond_dim)
        self.mlp_ratio = float(mlp_ratio)
        self.dropout = float(dropout)
        self.parameterization = parameterization
        self.time_conditioning = bool(time_conditioning)
        self.max_length = None if max_length is None else int(max_length)

        # Construction order fixes the initialisation for a given seed: embedding, noise
        # embedding, then the trunk's blocks, final modulation and head.
        self.embedding = nn.Embedding(self.num_states, self.dim)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.sigma_embedding = _SigmaEmbedding(self.cond_dim) if self.time_conditioning else None
        self.trunk = _Trunk(
            self.dim,
            self.depth,
            self.heads,
            self.cond_dim,
            hidden,
            self.dropout,
            self.num_states,
            causal=False,
        )
        # Only when asked for, after the trunk: a network without it is drawn as before.
        self.position: nn.Embedding | None = None
        if self.max_length is not None:
            self.position = nn.Embedding(self.max_length, self.dim)
            nn.init.normal_(self.position.weight, std=0.02)
        # Last: the parameters above are drawn exactly as in a network without labels.
        self.label_embedding = _label_embedding(self.num_labels, self.cond_dim)
        self.register_load_state_dict_pre_hook(_load_legacy_trunk_keys)

    @classmethod
    def from_preset(cls, name: str, num_states: int, **overrides: Any) -> TransformerScoreNet:
        """A network of a named size from `PRESETS`; keyword `overrides` replace its entries.

        Args:
            name: one of `PRESETS` ("tiny", "small", "medium").
            num_states: number of token states S.
            **overrides: any other constructor argument (`dropout`, `parameterization`, ...).

        Raises:
            ValueError: for an unknown preset name.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(num_states, **{**PRESETS[name], **overrides})

    def raw_output(
        self, x_t: Tensor, sigma: Tensor, *, label: Tensor | int | None = None
    ) -> Tensor:
        """The head's outputs `[B, L, S]` before the parameterisation (validated inputs)."""
        x_t, sigma = self.check_inputs(x_t, sigma)
        if label is not None:
            label = self.check_label(label, x_t.shape[0], x_t.device)
        return self._raw(x_t, sigma, label)

    def _forward(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        return self.parameterization(self._raw(x_t, sigma, None), x_t, sigma)

    def _forward_labelled(self, x_t: Tensor, sigma: Tensor, label: Tensor) -> Tensor:
        return self.parameterization(self._raw(x_t, sigma, label), x_t, sigma)

    def _raw(self, x_t: Tensor, sigma: Tensor, label: Tensor | None) -> Tensor:
        if self.sigma_embedding is None:  # time-agnostic: the modulations' biases are the constants
            c = self.embedding.weight.new_zeros(x_t.shape[0], self.cond_dim)
        else:
            c = self.sigma_embedding(sigma)
        if self.label_embedding is not None:
            c = c + _embed_label(self.label_embedding, label, x_t.shape[0]).to(c.dtype)
        h = self.embedding(x_t)
        if self.position is not None:
            h = _add_positions(h, self.position)
        return self.trunk(h, c)

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Number of parameters; by default without the two tables whose size grows with S.

        `non_embedding=True` leaves out the token embedding and the output head (SEDD's head is
        not tied to the embedding), the count that scaling studies compare (Kaplan et al. 2020).
        """
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= sum(
                p.numel()
                for p in (self.embedding.weight, self.trunk.head.weight, self.trunk.head.bias)
            )
        return total

    def extra_repr(self) -> str:
        return (
            f"num_states={self.num_states}, dim={self.dim}, depth={self.depth}, "
            f"heads={self.heads}, cond_dim={self.cond_dim}, mlp_ratio={self.mlp_ratio}, "
            f"dropout={self.dropout}, parameterization={self.parameterization!r}"
            + ("" if self.time_conditioning else ", time_conditioning=False")
            + (f", num_labels={self.num_labels}" if self.num_labels else "")
            + (f", max_length={self.max_length}" if self.max_length is not None else "")
        )


def _check_max_length(max_length: int | None) -> None:
    """`max_length` of an optional learned position table: a positive int, or None (none)."""
    if max_length is not None and (
        isinstance(max_length, bool) or int(max_length) != max_length or max_length < 1
    ):
        raise ValueError(
            f"max_length must be a positive integer (or None: rotary positions only), got "
            f"{max_length!r}"
        )


def _add_positions(h: Tensor, position: nn.Embedding) -> Tensor:
    """`h` `[B, L, dim]` plus the learned embedding of each absolute position `0..L-1`."""
    length = h.shape[1]
    if length > position.num_embeddings:
        raise ValueError(
            f"x_t has length {length}, longer than max_length = {position.num_embeddings} of "
            "the position table; build the network with a larger max_length"
        )
    return h + position.weight[:length]
