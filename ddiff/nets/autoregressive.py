"""A left-to-right transformer language model: the autoregressive baseline of the same size."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddiff._categorical import sample_categorical
from ddiff._checks import check_token_batch
from ddiff.nets.base import check_labels
from ddiff.nets.transformer import (
    PRESETS,
    _check_sizes,
    _embed_label,
    _label_embedding,
    _load_legacy_trunk_keys,
    _Trunk,
)


class CausalTransformer(nn.Module):
    r"""An autoregressive transformer: `TransformerScoreNet`'s blocks with a causal mask.

    The baseline that SEDD is compared with (Lou, Meng & Ermon, ICML 2024, against GPT-2): the
    same blocks, widths, rotary positions and `PRESETS` as `TransformerScoreNet`, trained on
    next-token prediction. It factorises a sequence left to right,

    $$p_\theta(x^1 \dots x^L) = \prod_{i=1}^{L} p_\theta(x^i \mid x^{<i}), \qquad
      p_\theta(\cdot \mid x^{<i}) = \mathrm{softmax}\bigl(f_\theta(\mathrm{BOS}, x^1, \dots,
      x^{L-1})_i\bigr),$$

    so its negative log-likelihood $-\log p_\theta(x) = -\sum_i \log p_\theta(x^i \mid x^{<i})$
    is exact (no bound, no Monte Carlo), the number a diffusion model's bound is measured against.

    - **Input**: the tokens shifted right by one, with a beginning-of-sequence id
      `BOS = num_tokens` in front (the embedding has `num_tokens + 1` rows).
    - **Blocks**: `TransformerScoreNet`'s pre-LayerNorm adaLN-Zero blocks with a causal
      attention mask (`scaled_dot_product_attention(..., is_causal=True)`): position i reads
      BOS and $x^{<i}$ only.
    - **No noise level**: the blocks get a constant conditioning vector $c = 0$, so each
      modulation $(a, b, g) = W c + \beta$ reduces to its learned bias $\beta$: a per-block
      affine map of the normalised activations and a per-block gate, as a LayerNorm's affine
      parameters and a residual scale would be. The weights $W$ multiply zero, never change the
      output and get zero gradients; `num_parameters` leaves them out.
    - **Output**: the same final modulated LayerNorm and zero-initialised linear head, to
      `num_tokens` logits (an untrained net is the uniform model).
    - **Labels** (`num_labels = C > 0`): the conditioning vector becomes a label embedding,
      $c = E[\text{label}]$ (C + 1 rows, the last the null label), as in
      `TransformerScoreNet`: the baseline of a label-conditioned diffusion model,
      $p_\theta(x \mid c)$. Every method takes `label=` (class ids `[batch]` or one int,
      `NULL_LABEL` for none; omitted: the null label). The modulation weights then read a
      non-zero vector and count as parameters.

    `log_prob` applies the log-softmax in float32 (or the logits' dtype if wider), so
    likelihoods and the training loss stay float32 under `torch.autocast(..., torch.bfloat16)`.

    Args:
        num_tokens: the data alphabet size N (>= 2); the model predicts tokens in `[0, N)`.
        dim: width of the residual stream.
        depth: number of transformer blocks.
        heads: attention heads; `dim / heads` must be an even integer (rotary pairs).
        cond_dim: width of the (constant, zero) conditioning vector the blocks' modulations
            read; kept so that presets and sizes match `TransformerScoreNet`.
        mlp_ratio: MLP hidden width as a multiple of `dim`.
        dropout: dropout on each block's attention and MLP outputs (0 to disable).
        num_labels: number of class labels C (0: unconditional). The label embedding is built
            after every other parameter, so the unconditional network's initial weights do not
            change.

    Example:
        >>> import torch
        >>> from ddiff.nets import CausalTransformer
        >>> _ = torch.manual_seed(0)
        >>> net = CausalTransformer.from_preset("tiny", num_tokens=4)
        >>> x = torch.tensor([[0, 3, 1]])
        >>> with torch.no_grad():
        ...     net(x).shape, net.nll(x)  # zero-initialised head: uniform, 3 log 4 nats
        (torch.Size([1, 3, 4]), tensor([4.1589]))
        >>> net.sample(2, 5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 5])
    """

    def __init__(
        self,
        num_tokens: int,
        dim: int = 256,
        depth: int = 4,
        heads: int = 4,
        cond_dim: int = 128,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        num_labels: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(num_tokens, bool) or int(num_tokens) != num_tokens or num_tokens < 2:
            raise ValueError(f"num_tokens must be an integer >= 2, got {num_tokens!r}")
        if isinstance(num_labels, bool) or int(num_labels) != num_labels or num_labels < 0:
            raise ValueError(
                f"num_labels must be an integer >= 0 (0: no labels), got {num_labels!r}"
            )
        hidden = _check_sizes(dim, depth, heads, cond_dim, mlp_ratio, dropout)
        self.num_tokens = int(num_tokens)
        self.dim = int(dim)
        self.depth = int(depth)
        self.heads = int(heads)
        self.cond_dim = int(cond_dim)
        self.mlp_ratio = float(mlp_ratio)
        self.dropout = float(dropout)
        self.num_labels = int(num_labels)

        # Construction order fixes the initialisation for a given seed: embedding, then trunk.
        self.embedding = nn.Embedding(self.num_tokens + 1, self.dim)  # the last row is BOS
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.trunk = _Trunk(
            self.dim,
            self.depth,
            self.heads,
            self.cond_dim,
            hidden,
            self.dropout,
            self.num_tokens,
            causal=True,
        )
        # Last: the parameters above are drawn exactly as in a network without labels.
        self.label_embedding = _label_embedding(self.num_labels, self.cond_dim)
        self.register_load_state_dict_pre_hook(_load_legacy_trunk_keys)

    @classmethod
    def from_preset(cls, name: str, num_tokens: int, **overrides: Any) -> CausalTransformer:
        """A network of a named size from `PRESETS`; keyword `overrides` replace its entries.

        Args:
            name: one of `PRESETS` ("tiny", "small", "medium"), as for `TransformerScoreNet`.
            num_tokens: the data alphabet size N.
            **overrides: any other constructor argument (`dim`, `dropout`, ...).

        Raises:
            ValueError: for an unknown preset name.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(num_tokens, **{**PRESETS[name], **overrides})

    @property
    def bos_token(self) -> int:
        """The beginning-of-sequence id read before the first token (`num_tokens`)."""
        return self.num_tokens

    if TYPE_CHECKING:  # `nn.Module.__call__` is untyped; say what calling the network returns.

        def __call__(self, tokens: Tensor, *, label: Tensor | int | None = None) -> Tensor: ...

    def forward(self, tokens: Tensor, *, label: Tensor | int | None = None) -> Tensor:
        """Next-token logits: entry `[b, i]` scores $x^i$ given BOS and `tokens[b, :i]`.

        Args:
            tokens: integer tensor `[batch, length]` with values in `[0, num_tokens)`.
            label: class ids `[batch]` or one int (`NULL_LABEL`: none), for a network with
                labels only; omitted, the null label.

        Returns:
            Logits `[batch, length, num_tokens]` (bf16 under bf16 autocast).

        Raises:
            ValueError: if the shape, dtype or a token id is invalid; the message names the
                `[batch b, position i]` of the first bad token.
        """
        tokens = check_token_batch(tokens, self.num_tokens, "tokens", "num_tokens")
        b = tokens.shape[0]
        if label is not None:
            label = check_labels(label, self.num_labels, b, tokens.device)
        bos = tokens.new_full((b, 1), self.bos_token)
        h = self.embedding(torch.cat([bos, tokens[:, :-1]], dim=1))
        # No noise level: a zero conditioning vector leaves each modulation its bias.
        c = h.new_zeros(b, self.cond_dim)
        if self.label_embedding is not None:
            c = c + _embed_label(self.label_embedding, label, b).to(c.dtype)
        return self.trunk(h, c)

    def log_prob(self, tokens: Tensor, *, label: Tensor | int | None = None) -> Tensor:
        r"""$\log p_\theta(x^i \mid x^{<i})$ per position, `[batch, length]`, float32 or wider.

        The log-softmax runs on logits upcast to float32 (or kept, if wider), also under bf16
        autocast. Arguments and errors as for `forward`.
        """
        logits = self(tokens, label=label)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        log_p = F.log_softmax(logits, dim=-1)
        return log_p.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)

    def nll(self, tokens: Tensor, *, label: Tensor | int | None = None) -> Tensor:
        r"""Exact negative log-likelihood of each sequence, nats, `[batch]`.

        $-\log p_\theta(x) = -\sum_{i=1}^{L} \log p_\theta(x^i \mid x^{<i})$ over **all** L
        positions, padding included (as the diffusion bound counts them; see
        `ddiff.training.data`). Per-token figures divide by the number of real tokens
        (`TokenBatch.lengths`), which is the caller's business
        (`ddiff.eval.bits_per_token` does it).
        """
        return -self.log_prob(tokens, label=label).sum(dim=-1)

    @torch.no_grad()
    def sample(
        self,
        num: int,
        length: int,
        generator: torch.Generator | None = None,
        categorical_dtype: torch.dtype = torch.float64,
        *,
        label: int | None = None,
    ) -> Tensor:
        """Draw `num` sequences of `length` tokens, left to right (ancestral sampling).

        Every step recomputes the whole prefix (no key-value cache): L forward passes of
        growing length, fine for baselines and tests. Call `.eval()` first if the network has
        dropout.

        Args:
            num: number of sequences (>= 1).
            length: tokens per sequence (>= 1); rotary positions extrapolate past the
                training length, the quality of the samples need not.
            generator: source of randomness, on the network's device; None uses torch's global
                generator.
            categorical_dtype: dtype of the categorical draws (float64 by default: float32
                under-samples the tails).
            label: draw from $p_\theta(x \\mid c)$ (a network with labels only).

        Returns:
            LongTensor `[num, length]` on the network's device.
        """
        for name, value in (("num", num), ("length", length)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        device = self.embedding.weight.device
        x = torch.zeros(int(num), int(length), dtype=torch.long, device=device)
        for i in range(int(length)):
            # Position i of the logits reads BOS and x[:, :i] only; x[:, i] is a placeholder.
            logits = self(x[:, : i + 1], label=label)[:, i]
            probs = torch.softmax(logits.to(categorical_dtype), dim=-1)
            x[:, i] = sample_categorical(probs, generator, dtype=categorical_dtype)
        return x

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Number of parameters that can change the output.

        Without labels, leaves out the modulation weights that multiply the zero conditioning
        vector (they are inert). `non_embedding=True` also leaves out the token embedding and the
        output head, the two tables whose size grows with the vocabulary, as
        `TransformerScoreNet.num_parameters` does (Kaplan et al. 2020).
        """
        total = sum(
            p.numel()
            for name, p in self.named_parameters()
            # The modulation weights read c: zero without labels, the label embedding with.
            if self.num_labels or not name.endswith("modulation.weight")
        )
        if non_embedding:
            total -= sum(
                p.numel()
                for p in (self.embedding.weight, self.trunk.head.weight, self.trunk.head.bias)
            )
        return total

    def extra_repr(self) -> str:
        return (
            f"num_tokens={self.num_tokens}, dim={self.dim}, depth={self.depth}, "
            f"heads={self.heads}, cond_dim={self.cond_dim}, mlp_ratio={self.mlp_ratio}, "
            f"dropout={self.dropout}"
            + (f", num_labels={self.num_labels}" if self.num_labels else "")
        )
