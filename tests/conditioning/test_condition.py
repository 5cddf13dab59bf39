"""Conditions: construction, resolution against a length and an alphabet, and clear errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddiff.conditioning import Clamp, Condition, Motif


def fixed(clamp: Clamp) -> dict[int, int]:
    return {int(i): int(clamp.tokens[i]) for i in clamp.mask.nonzero().squeeze(-1)}


def test_constructors_resolve_to_the_fixed_positions() -> None:
    assert fixed(Condition.at({0: 1, 4: 2}).resolve(6, 3)) == {0: 1, 4: 2}
    assert fixed(Condition.span(2, [1, 0, 2]).resolve(6, 3)) == {2: 1, 3: 0, 4: 2}
    assert fixed(Condition.prefix([2, 2]).resolve(5, 3)) == {0: 2, 1: 2}
    assert fixed(Condition.suffix([0, 1]).resolve(5, 3)) == {3: 0, 4: 1}
    assert fixed(Condition.suffix([0, 1]).resolve(2, 3)) == {0: 0, 1: 1}
    assert fixed(Condition.motifs_at([(0, [1]), (-2, [2, 0])]).resolve(4, 3)) == {
        0: 1,
        2: 2,
        3: 0,
    }
    assert fixed(Condition.at({-1: 2}).resolve(3, 3)) == {2: 2}
    assert fixed(Condition.span(1, torch.tensor([2, 1])).resolve(3, 3)) == {1: 2, 2: 1}


def test_union_and_agreeing_overlaps() -> None:
    c = Condition.prefix([1, 2, 0]) | Condition.span(2, [0, 1]) | Condition.at({4: 2})
    clamp = c.resolve(6, 3)
    assert fixed(clamp) == {0: 1, 1: 2, 2: 0, 3: 1, 4: 2}
    assert clamp.num_fixed == 5 and not clamp.is_full and not clamp.is_empty
    assert Condition().is_empty and Condition().resolve(4, 2).is_empty
    assert Condition.prefix([0, 1]).resolve(2, 2).is_full


def test_resolve_device_and_dtypes() -> None:
    clamp = Condition.at({1: 1}).resolve(3, 2, device="cpu")
    assert clamp.mask.dtype == torch.bool and clamp.tokens.dtype == torch.long
    assert clamp.mask.shape == clamp.tokens.shape == (3,)


@pytest.mark.parametrize(
    ("condition", "length", "message"),
    [
        (
            Condition.span(0, [1, 2, 0, 1, 1], name="TATA"),
            4,
            "motif 'TATA' at position 0 has 5 tokens, longer than the sequence \\(length 4\\)",
        ),
        (Condition.at({7: 1}), 5, "motif \\[1\\] at position 7 is out of range .* length 5"),
        (Condition.at({-6: 1}), 5, "motif \\[1\\] at position -6 is out of range"),
        (
            Condition.span(3, [1, 1, 1], name="tail"),
            5,
            "motif 'tail' at position 3 \\(3 tokens\\) runs past the end .* positions 3..5",
        ),
        (
            Condition.span(1, [0, 3], name="m"),
            5,
            "motif 'm' at position 1: token 3 \\(sequence position 2\\) is not a data token; "
            "the alphabet has 3 tokens",
        ),
        (
            Condition.span(0, [1, 2, 0], name="a") | Condition.span(2, [1, 1], name="b"),
            5,
            "motif 'a' at position 0 and motif 'b' at position 2 overlap and disagree at "
            "sequence position 2 \\(token 0 vs 1\\)",
        ),
        (
            Condition.prefix([1, 1]) | Condition.suffix([2, 2]),
            3,
            "motif 'prefix' at position 0 and motif 'suffix' at position -2 overlap and disagree "
            "at sequence position 1",
        ),
    ],
)
def test_errors_name_the_motif_and_position(
    condition: Condition, length: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        condition.resolve(length, 3)


def test_invalid_motifs_are_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="has no tokens"):
        Motif((), 0)
    with pytest.raises(ValueError, match="token #1 is -1"):
        Condition.span(0, [1, -1])
    with pytest.raises(ValueError, match=r"token #0 is 1\.5"):
        Condition.span(0, [1.5])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="encode it with the domain's alphabet"):
        Condition.span(0, "ACGT")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-d tensor of integer ids"):
        Condition.span(0, torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="position must be an int"):
        Motif((1,), 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Motif objects"):
        Condition(((0, 1),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="length must be a positive int"):
        Condition.at({0: 1}).resolve(0, 3)
    with pytest.raises(ValueError, match="num_tokens must be a positive int"):
        Condition.at({0: 1}).resolve(3, 0)


def test_motif_tokens_are_normalised_to_a_tuple() -> None:
    motif = Motif([1, 2], 3, name="m")  # type: ignore[arg-type]
    assert motif.tokens == (1, 2)
    assert motif.describe() == "motif 'm' at position 3"
    assert Motif(tuple(range(10)), 0).describe().startswith("motif [0, 1, 2, 3, 4, 5, 6, 7, ...]")


@st.composite
def disjoint_motifs(draw: st.DrawFn) -> tuple[int, list[tuple[int, list[int]]]]:
    length = draw(st.integers(1, 30))
    motifs, pos = [], 0
    while pos < length:
        pos += draw(st.integers(0, 3))
        size = draw(st.integers(1, 4))
        if pos + size > length:
            break
        motifs.append((pos, draw(st.lists(st.integers(0, 4), min_size=size, max_size=size))))
        pos += size
    return length, motifs


@given(disjoint_motifs(), st.booleans())
def test_resolved_clamp_puts_every_motif_in_place(
    case: tuple[int, list[tuple[int, list[int]]]], from_end: bool
) -> None:
    length, motifs = case
    given_motifs = [(p - length if from_end else p, toks) for p, toks in motifs]
    clamp = Condition.motifs_at(given_motifs).resolve(length, 5)
    x = clamp(torch.full((2, length), 9))
    for pos, toks in motifs:
        assert x[:, pos : pos + len(toks)].tolist() == [toks, toks]
    assert clamp.num_fixed == sum(len(t) for _, t in motifs)
    assert int((x == 9).sum()) == 2 * (length - clamp.num_fixed)
