r"""Sample-quality metrics for text: diversity (distinct-n), novelty, unigram entropy.

**Units.** Every metric counts n-grams of *units*, decided by the input:

- strings are split into **words** by `words` (runs of letters/digits/underscore, and every other
  non-space character on its own; case kept). Word-level numbers do not depend on the tokenizer,
  so they compare models with different vocabularies (a diffusion model and an autoregressive
  baseline) and match how the metrics are usually reported. Decode samples to text first;
- token tensors (`[N, length]`, or a list of 1-D tensors or int lists) count **tokens**, which
  is cheaper and exact, but the numbers are specific to one tokenizer.

Mixing strings and tokens between the two arguments of `novel_ngram_rate` is an error.

**Read the numbers against real data of the same size and length.** Distinct-n falls as a set
grows, the novel rate depends on how much text the reference holds, and the plug-in entropy is
biased downwards on short sequences; `domains/text/README.md` lists the values of held-out
addresses and of held-out windows of the length a model generates.

The likelihood bound in bits per character is `ddiff.domains.text.bits_per_character`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from torch import Tensor

__all__ = ["Texts", "distinct_n", "novel_ngram_rate", "unigram_entropy", "words"]

Texts = Sequence[str] | Tensor | Sequence[Tensor] | Sequence[np.ndarray] | Sequence[Sequence[int]]
"""Strings (counted in words), or token sequences: a `[N, length]` tensor or a list of 1-D ones
(tensors, arrays or lists of ints)."""

_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    r"""The word units of a string: `\w+` runs, and each other non-space character alone.

    Example:
        >>> words("The state of our Union is strong.")
        ['The', 'state', 'of', 'our', 'Union', 'is', 'strong', '.']
        >>> words("U.S. — 1,000")
        ['U', '.', 'S', '.', '—', '1', ',', '000']
    """
    return _WORD.findall(text)


def _units(
    texts: Texts, name: str, vocab: dict[str, int], kind: str | None = None
) -> tuple[list[np.ndarray], str]:
    """Each text as an int64 array of unit ids (word ids from `vocab`, or the tokens)."""
    if isinstance(texts, str):
        raise TypeError(f"{name}: pass a list of texts, not a single string")
    if isinstance(texts, Tensor):
        if texts.dim() != 2:
            raise ValueError(
                f"{name}: a tensor of sequences must be [N, length], got shape {tuple(texts.shape)}"
            )
        texts = list(texts.detach().cpu().numpy())
    if len(texts) == 0:
        raise ValueError(f"{name}: no texts")
    is_str = [isinstance(t, str) for t in texts]
    if any(is_str) and not all(is_str):
        raise TypeError(f"{name}: mix of strings and token sequences; pass one kind")
    found = "words" if is_str[0] else "tokens"
    if kind is not None and found != kind:
        raise TypeError(
            f"{name} holds {found} but the samples hold {kind}: decode both to text, or pass "
            "tokens of the same tokenizer for both"
        )
    out = []
    for i, text in enumerate(texts):
        if found == "words":
            ids = [vocab.setdefault(w, len(vocab)) for w in words(text)]
            out.append(np.asarray(ids, dtype=np.int64))
            continue
        a = np.asarray(text.detach().cpu() if isinstance(text, Tensor) else text)
        if a.ndim != 1 or (
            a.size and (a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer))
        ):
            raise ValueError(
                f"{name}, sequence {i}: need a 1-D sequence of integer tokens, got shape "
                f"{a.shape} and dtype {a.dtype}"
            )
        if a.size and int(a.min()) < 0:
            raise ValueError(f"{name}, sequence {i}: negative token {int(a.min())}")
        out.append(a.astype(np.int64, copy=False))
    return out, found


def _ngram_keys(seqs: list[np.ndarray], n: int, base: int) -> np.ndarray:
    """One int64 key per n-gram of every sequence (none crosses a sequence boundary); two keys
    are equal exactly when the n-grams are (units are in `[0, base)`)."""
    parts = [sliding_window_view(s, n) for s in seqs if s.size >= n]
    if not parts:
        return np.empty(0, dtype=np.int64)
    grams = np.concatenate(parts)
    key = grams[:, 0].copy()
    for j in range(1, n):
        if int(key.max()) >= np.iinfo(np.int64).max // base:  # key * base would overflow:
            key = np.unique(key, return_inverse=True)[1].reshape(-1)  # rank the keys first
        key = key * base + grams[:, j]
    return key


def _base(*seq_lists: list[np.ndarray]) -> int:
    return 1 + max((int(s.max()) for seqs in seq_lists for s in seqs if s.size), default=0)


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")


def distinct_n(texts: Texts, n: int) -> float:
    r"""Distinct-n: the number of distinct n-grams over the total number of n-grams.

    Li, Galley, Brockett, Gao & Dolan, "A Diversity-Promoting Objective Function for Neural
    Conversation Models", NAACL 2016. The n-grams of all texts are pooled (corpus-level,
    as in the paper; no n-gram crosses from one text to the next):

    $$\text{distinct-}n = \frac{|\{\text{distinct } n\text{-grams}\}|}{\#n\text{-grams}} \in (0, 1].$$

    Li et al. divide by the number of generated words; the number of n-grams used here (the
    usual implementation) differs by $n - 1$ per text and keeps the value in (0, 1]. Low values
    mean repetitive samples; the value falls as the set grows, so compare sets of equal size.

    Args:
        texts: strings (word n-grams) or token sequences (token n-grams); see the module doc.
        n: n-gram length, >= 1.

    Returns:
        The fraction of n-grams that are distinct.

    Raises:
        ValueError: if `n` < 1, there are no texts, or no text has n units.

    Example:
        >>> distinct_n(["the people the people the people"], 2)  # 2 distinct of 5 bigrams
        0.4
        >>> import torch
        >>> x = torch.randint(0, 2048, (8, 64), generator=torch.Generator().manual_seed(0))
        >>> distinct_n(x, 1) > 0.8, distinct_n(torch.zeros(8, 64, dtype=torch.long), 1)  # 1 / 512
        (True, 0.001953125)
    """
    _check_n(n)
    seqs, _ = _units(texts, "texts", {})
    keys = _ngram_keys(seqs, n, _base(seqs))
    if keys.size == 0:
        raise ValueError(f"no {n}-grams: every text is shorter than {n} units")
    return float(np.unique(keys).size / keys.size)


def novel_ngram_rate(samples: Texts, train: Texts, n: int = 4) -> float:
    r"""Novelty: the fraction of the samples' n-grams that never occur in the training data.

    Counted over n-gram *occurrences* (a repeated novel n-gram counts every time), as in
    McCoy, Smolensky, Linzen, Gao & Celikyilmaz, "How Much Do Language Models Copy From Their
    Training Data? Evaluating Linguistic Novelty in Text Generation Using RAVEN", TACL 11, 2023.
    0 means every n-gram was copied from the training set (the training set scored against
    itself gives exactly 0); real unseen text is far from 0 at n = 4 in words. Read a model's
    value against held-out text: well below it means memorisation, well above it (random word
    salad scores ~1) means the samples are not like the data. Strings are compared in words
    (tokenizer-independent; the default for reporting), token sequences in tokens.

    Args:
        samples: generated texts (strings or token sequences).
        train: the training texts, of the same kind as `samples`.
        n: n-gram length, >= 1.

    Returns:
        The fraction of sample n-grams absent from `train`, in [0, 1].

    Raises:
        TypeError: if one argument holds strings and the other tokens.
        ValueError: if `n` < 1 or the samples hold no n-gram.

    Example:
        >>> train = ["we hold these truths to be self-evident"]
        >>> novel_ngram_rate(train, train), novel_ngram_rate(["we hold these truths dear"], train)
        (0.0, 0.5)
    """
    _check_n(n)
    vocab: dict[str, int] = {}  # shared, so that equal words get equal ids in both sets
    sample_seqs, kind = _units(samples, "samples", vocab)
    train_seqs, _ = _units(train, "train", vocab, kind)
    # One key space for both sets (the key packing may re-rank, which must see both at once).
    base = _base(sample_seqs, train_seqs)
    keys = _ngram_keys([*sample_seqs, *train_seqs], n, base)
    num_sample = sum(max(s.size - n + 1, 0) for s in sample_seqs)
    if num_sample == 0:
        raise ValueError(f"no {n}-grams in the samples: every sample is shorter than {n} units")
    return float(np.mean(~np.isin(keys[:num_sample], keys[num_sample:])))


def unigram_entropy(samples: Texts, pooled: bool = False) -> float:
    r"""Shannon entropy of the unigram (word or token) frequencies, in bits.

    $$H = -\sum_v \hat p_v \log_2 \hat p_v,$$

    with $\hat p$ the empirical frequencies (the plug-in estimator: biased downwards, by about
    $(K - 1) / (2 N \ln 2)$ bits for $K$ distinct units among $N$; Miller 1955). By default $H$
    is computed per sequence and averaged, which flags degenerate samples that repeat a few
    units (the diagnostic of Zheng et al., "Masked Diffusion Models are Secretly Time-Agnostic
    Masked Models and Exploit Inaccurate Categorical Sampling", 2024, for masked diffusion
    samplers); `pooled=True` gives the entropy of all samples' units together (vocabulary use).
    Both depend on sequence length: compare with held-out text cut to the samples' length.

    Args:
        samples: strings (words) or token sequences (tokens), each with at least one unit.
        pooled: one distribution over all samples instead of the mean per sequence.

    Returns:
        Entropy in bits (0 for a sequence of one repeated unit).

    Raises:
        ValueError: if there are no samples or one of them has no unit.

    Example:
        >>> unigram_entropy(["a a a a"]), unigram_entropy(["a b a b", "c c c c"])
        (0.0, 0.5)
        >>> unigram_entropy(["a b a b", "c c c c"], pooled=True)
        1.5
        >>> import torch
        >>> x = torch.randint(0, 2048, (4, 4096), generator=torch.Generator().manual_seed(0))
        >>> round(unigram_entropy(x), 1)  # uniform over 2048 tokens: 11 bits, minus the bias
        10.6
    """
    seqs, _ = _units(samples, "samples", {})
    for i, s in enumerate(seqs):
        if s.size == 0:
            raise ValueError(f"samples, sequence {i}: no units (empty, or only whitespace)")

    def entropy(units: np.ndarray) -> float:
        _, counts = np.unique(units, return_counts=True)
        p = counts / counts.sum()
        return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0

    if pooled:
        return entropy(np.concatenate(seqs))
    return float(np.mean([entropy(s) for s in seqs]))
