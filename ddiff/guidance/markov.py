"""The exact noisy classifier of labels whose sequences are periodic Markov chains."""

from __future__ import annotations

import torch
from torch import Tensor

from ddiff.graphs import Graph


class MarkovClassifier(torch.nn.Module):
    r"""$p(c \mid x_t)$ computed exactly for a labelled source of periodic Markov chains.

    Each label $c$ has its own generative model of clean sequences of a fixed length $L$: a
    Markov chain of order $k$ whose transition probabilities depend on the phase
    $r = i \bmod P$ of the position (`period` $P$; $P = 3$ with codon-aligned windows gives one
    chain per codon position, the classical gene model),

    $$p(x_0 \mid c) = \pi_c(x_0^{0:k}) \prod_{i \ge k}
      T_c^{(i \bmod P)}(x_0^i \mid x_0^{i-k:i}).$$

    Every graph of ddiff noises the positions independently, so $x_t$ given $x_0$ is a
    product of the kernel entries $P(\bar\sigma)[x_t^i, x_0^i]$ and, for each label, $x_t$ is
    the emission of a hidden Markov model whose hidden states are the last $k$ clean tokens.
    The forward algorithm (in log space, float64) sums over every clean sequence,

    $$p(x_t \mid c) = \sum_{x_0} p(x_0 \mid c) \prod_i P(\bar\sigma)[x_t^i, x_0^i],
      \qquad p(c \mid x_t) = \frac{p(c)\, p(x_t \mid c)}{\sum_{c'} p(c')\, p(x_t \mid c')},$$

    in $O(L\, C\, S^{k+1})$ per sequence, with no training and no approximation: if the data
    of each label *are* such chains this is the exact noisy classifier of the Bayes identity
    $p(c \mid x_t) = \sum_{x_0} p(c \mid x_0)\, p(x_0 \mid x_t)$, which is what
    `ClassifierGuidance` needs to sample $p(x \mid c)$ at weight 1 (tested against enumeration
    of every clean sequence). For real data it is a model, as good as the chains describe the
    labels; unlike a network classifier it needs no noised training, its held-out accuracy at
    each noise level can be read off directly, and a single-token change of $x_t$ moves its
    output by exactly the evidence that token carries under the chains, masked positions
    summed out exactly.

    `fit` estimates the chains by counting (add-`pseudocount` smoothing); the constructor takes
    log-probabilities directly. Call it as a network classifier of all labels,
    `classifier(x_t [B, L], sigma [B]) -> log p(c | x_t) [B, C]` (float64), and bind one label
    with `ddiff.guidance.select_label`. A `condition=` keyword (infill) is accepted and not
    needed: fixed tokens are ordinary observed tokens of $x_t$. It takes token indices only
    (the exact mode of `ClassifierGuidance`; not the one-hot input of the first-order mode).

    Args:
        graph: the forward process (its `kernel` gives the emission probabilities).
        log_prior: $\log p(c)$, `[C]`.
        log_init: $\log \pi_c$ of the first $k$ tokens, `[C, S^k]` (the tuple $(v_0, \ldots,
            v_{k-1})$ at index $\sum_j v_j S^{k-1-j}$).
        log_trans: $\log T_c^{(r)}(v \mid \text{context})$, `[C, P, S^k, S]` (the context
            indexed like `log_init`).

    Raises:
        ValueError: for inconsistent shapes, or probabilities that do not sum to 1.

    Example:
        >>> import torch
        >>> from ddiff import AbsorbingGraph
        >>> from ddiff.guidance import MarkovClassifier
        >>> graph = AbsorbingGraph(4)
        >>> g = torch.Generator().manual_seed(0)
        >>> x0 = torch.cat([torch.randint(0, 2, (200, 12), generator=g),   # label 0: A/C
        ...                 torch.randint(2, 4, (200, 12), generator=g)])  # label 1: G/T
        >>> labels = torch.arange(2).repeat_interleave(200)
        >>> clf = MarkovClassifier.fit(graph, x0, labels, order=1, period=1)
        >>> x_t = torch.tensor([[4] * 11 + [2]])  # one visible G, eleven MASKs
        >>> clf(x_t, torch.tensor([2.0], dtype=torch.float64)).exp().round(decimals=2)
        tensor([[0., 1.]], dtype=torch.float64)
        >>> clf(torch.full((1, 12), 4), torch.tensor([2.0])).exp()  # all masked: the prior
        tensor([[0.5000, 0.5000]], dtype=torch.float64)
    """

    log_prior: Tensor
    log_init: Tensor
    log_trans: Tensor

    def __init__(self, graph: Graph, log_prior: Tensor, log_init: Tensor, log_trans: Tensor):
        super().__init__()
        s = graph.num_tokens
        if log_prior.dim() != 1 or log_prior.shape[0] < 2:
            raise ValueError(f"log_prior must be [C] with C >= 2, got {list(log_prior.shape)}")
        c = log_prior.shape[0]
        if log_trans.dim() != 4 or log_trans.shape[0] != c or log_trans.shape[3] != s:
            raise ValueError(
                f"log_trans must be [C, P, S^k, S] = [{c}, P, {s}^k, {s}], "
                f"got {list(log_trans.shape)}"
            )
        order = _order(log_trans.shape[2], s)
        if list(log_init.shape) != [c, s**order]:
            raise ValueError(
                f"log_init must be [C, S^k] = [{c}, {s**order}], got {list(log_init.shape)}"
            )
        for name, lp in (
            ("log_prior", log_prior),
            ("log_init", log_init),
            ("log_trans", log_trans),
        ):
            total = torch.logsumexp(lp.to(torch.float64), dim=-1)
            if not bool(torch.allclose(total, torch.zeros_like(total), atol=1e-6)):
                raise ValueError(
                    f"{name} must hold log-probabilities summing to 1 on its last axis"
                )
        self.graph = graph
        self.order, self.period = order, log_trans.shape[1]
        self.register_buffer("log_prior", log_prior.to(torch.float64))
        self.register_buffer("log_init", log_init.to(torch.float64))
        self.register_buffer("log_trans", log_trans.to(torch.float64))

    @property
    def num_labels(self) -> int:
        return int(self.log_prior.shape[0])

    @classmethod
    def fit(
        cls,
        graph: Graph,
        tokens: Tensor,
        labels: Tensor,
        *,
        num_labels: int | None = None,
        order: int = 2,
        period: int = 1,
        pseudocount: float = 0.5,
    ) -> MarkovClassifier:
        """The chains of each label estimated by counting on clean sequences.

        Args:
            graph: the forward process.
            tokens: clean training sequences `[N, L]`, data tokens only, `L > order`.
            labels: their labels `[N]`, in `[0, num_labels)`.
            num_labels: $C$ (default: the largest label + 1); every label needs a sequence.
            order: $k \\ge 1$.
            period: $P \\ge 1$ (1: one chain for every position).
            pseudocount: added to every count (> 0), so unseen transitions keep a probability.

        Raises:
            ValueError: for tokens outside the graph's data tokens, labels out of range, a label
                with no sequence, or bad `order`, `period` or `pseudocount`.
        """
        s = graph.num_tokens
        if order < 1 or period < 1 or not pseudocount > 0:
            raise ValueError(
                f"need order >= 1, period >= 1 and pseudocount > 0, got {order}, {period}, "
                f"{pseudocount}"
            )
        tokens, labels = torch.as_tensor(tokens).long(), torch.as_tensor(labels).long()
        if tokens.dim() != 2 or labels.shape != tokens.shape[:1]:
            raise ValueError(
                f"tokens must be [N, L] and labels [N], got {list(tokens.shape)} and "
                f"{list(labels.shape)}"
            )
        n, length = tokens.shape
        if length <= order:
            raise ValueError(f"sequences of length {length} are too short for order {order}")
        if bool(((tokens < 0) | (tokens >= s)).any()):
            row, col = (((tokens < 0) | (tokens >= s)).nonzero()[0]).tolist()
            raise ValueError(
                f"tokens must be data tokens in [0, {s}); sequence {row}, position {col} holds "
                f"{int(tokens[row, col])}"
            )
        c = int(labels.max()) + 1 if num_labels is None and n else int(num_labels or 0)
        if c < 2 or bool(((labels < 0) | (labels >= c)).any()):
            raise ValueError(f"labels must lie in [0, {c}) with at least 2 labels")
        counts = torch.bincount(labels, minlength=c)
        if bool((counts == 0).any()):
            missing = (counts == 0).nonzero()[0].item()
            raise ValueError(f"label {missing} has no training sequence")
        # code[:, j] indexes the k-mer at positions j .. j + k - 1
        code = torch.zeros(n, length - order + 1, dtype=torch.long)
        for j in range(order):
            code = code * s + tokens[:, j : length - order + 1 + j]
        init = torch.full((c, s**order), float(pseudocount), dtype=torch.float64)
        trans = torch.full((c, period, s**order * s), float(pseudocount), dtype=torch.float64)
        for label in range(c):
            rows = labels == label
            init[label] += torch.bincount(code[rows, 0], minlength=s**order).double()
            for i in range(order, length):
                pair = code[rows, i - order] * s + tokens[rows, i]
                trans[label, i % period] += torch.bincount(pair, minlength=s**order * s).double()
        trans = trans.view(c, period, s**order, s)
        return cls(
            graph,
            torch.log(counts.double() / n),
            torch.log(init / init.sum(-1, keepdim=True)),
            torch.log(trans / trans.sum(-1, keepdim=True)),
        )

    def log_likelihood(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        """$\\log p(x_t \\mid c)$ for every label, `[B, C]` (float64): the forward algorithm."""
        if x_t.is_floating_point() or x_t.dim() != 2:
            raise TypeError(
                "MarkovClassifier takes token indices x_t [batch, length] (the exact mode of "
                f"ClassifierGuidance), got a {x_t.dtype} tensor of shape {list(x_t.shape)}"
            )
        s, k = self.graph.num_tokens, self.order
        batch, length = x_t.shape
        if length <= k:
            raise ValueError(f"sequences of length {length} are too short for order {k}")
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x_t.device).expand(batch)
        # emission[b, i, v] = log P(x_t^i | x_0^i = v), over the data tokens v
        emission = self.graph.transition_in(x_t, sigma)[..., :s].to(torch.float64).log()
        first = emission[:, 0]
        for j in range(1, k):
            first = (first[:, :, None] + emission[:, j, None, :]).reshape(batch, -1)
        alpha = self.log_init[None] + first[:, None, :]  # [B, C, S^k]
        c = alpha.shape[1]
        for i in range(k, length):
            # alpha over (oldest token, the k - 1 newer ones); the next state drops the oldest
            trans = self.log_trans[:, i % self.period].view(c, s, s ** (k - 1), s)
            joint = alpha.view(batch, c, s, s ** (k - 1), 1) + trans
            alpha = torch.logsumexp(joint, dim=2) + emission[:, i, None, None, :]
            alpha = alpha.reshape(batch, c, -1)
        return torch.logsumexp(alpha, dim=-1)

    def forward(self, x_t: Tensor, sigma: Tensor, condition: object = None) -> Tensor:
        """$\\log p(c \\mid x_t)$, `[B, C]` (float64); `condition` is ignored (see above)."""
        del condition
        return torch.log_softmax(self.log_likelihood(x_t, sigma) + self.log_prior, dim=-1)

    def extra_repr(self) -> str:
        return f"labels={self.num_labels}, order={self.order}, period={self.period}"


def _order(contexts: int, num_tokens: int) -> int:
    order = 1
    while num_tokens**order < contexts:
        order += 1
    if num_tokens**order != contexts:
        raise ValueError(f"log_trans has {contexts} contexts, not a power of S = {num_tokens}")
    return order
