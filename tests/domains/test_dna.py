"""Tests of the DNA domain (`ddiff.domains.dna`) and its metrics (`ddiff.eval.dna_metrics`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddiff.domains.dna import (
    DNA_ALPHABET,
    LABELS,
    PROMOTER_LENGTH,
    coordinate_regions,
    decode,
    encode,
    load_genes,
    load_labelled,
    load_promoters,
    random_reverse_complement,
    read_fasta,
    read_genbank,
    reverse_complement,
    split_by_coordinate,
    windows,
    write_fasta,
)
from ddiff.eval.dna_metrics import (
    copied_kmer_rate,
    gc_content,
    kmer_counts,
    kmer_js_divergence,
    pwm_hit_rates,
)

# Two records copied from Biopython's `Doc/examples/ls_orchid.fasta` (BSD-3; NCBI records
# Z78533.1 and Z78482.1): the second has `N` at 1-based positions 166 and 246.
ORCHIDS = """>gi|2765658|emb|Z78533.1|CIZ78533 C.irapeanum 5.8S rRNA gene and ITS1 and ITS2 DNA
CGTAACAAGGTTTCCGTAGGTGAACCTGCGGAAGGATCATTGATGAGACCGTGGAATAAACGATCGAGTG
AATCCGGAGGACCGGTGTACTCAGCTCACCGGGGGCATTGCTCCCGTGGTGACCCTGATTTGTTGTTGGG
CCGCCTCGGGAGCGTCCATGGCGGGTTTGAACCTCTAGCCCGGCGCAGTTTGGGCGCCAAGCCATATGAA
AGCATCACCGGCGAATGGCATTGTCTTCCCCAAAACCCGGAGCGGCGGCGTGCTGTCGCGTGCCCAATGA
ATTTTGATGACTCTCGCAAACGGGAATCTTGGCTCTTTGCATCGGATGGAAGGACGCAGCGAAATGCGAT
AAGTGGTGTGAATTGCAAGATCCCGTGAACCATCGAGTCTTTTGAACGCAAGTTGCGCCCGAGGCCATCA
GGCTAAGGGCACGCCTGCTTGGGCGTCGCGCTTCGTCTCTCTCCTGCCAATGCTTGCCCGGCATACAGCC
AGGCCGGCGTGGTGCGGATGTGAAAGATTGGCCCCTTGTGCCTAGGTGCGGCGGGTCCAAGAGCTGGTGT
TTTGATGGCCCGGAACCCGGCAAGAGGTGGACGGATGCTGGCAGCAGCTGCCGTGCGAATCCCCCATGTT
GTCGTGCTTGTCGGACAGGCAGGAGAACCCTTCCGAACCCCAATGGAGGGCGGTTGACCGCCATTCGGAT
GTGACCCCAGGTCAGGCGGGGGCACCCGCTGAGTTTACGC
>gi|2765607|emb|Z78482.1|PEZ78482 P.exul 5.8S rRNA gene and ITS1 and ITS2 DNA
TCTACTGCAGTGACCGAGATTTGCCATCGAGCCTCCTGGGAGCTTTCTTGCTGGCGATCTAAACCGTAGC
CCGGCGCAGTTTTGCGCCAAGTCATATGACACATAATTGGTGAAGGGGGCGGCATGCTGCCTTGACCCTC
CCCAAATTATTTTTTAACAACTCTCNGCAACGGATATCTCGCCTCTTCATCGATGAAGAACGCAGCGAAA
TGCGATAAATGGTGTGAATTGCAGAATCCCGTGAANCCATCGAGTCTTTGAACGCAAGTTGCGCCCGAGG
CCATCAGGCCAAGGGCACGCCTGCCTGGGCATTGCGAGTCATATCTCTCCCTTAATGAGGCTGTCCATAC
ATACTGTTCAGCCGGTGCGGATGTGCGTTTGGCCCCTTGTTCATTGGTACGGGGGGTCTAAGAGCTGCGT
GGGCTTTTGATGGTCCTAAATACGGCAAGAGGTGGACGAACTATGCTACAACAAAACTGTTGTGCGAATG
CCCCGGGTTGTCGTATTAGATGGGCCAGCATAATCTAAAGACCCTTTTGAACCCCATTGGAGGCCCATCA
ACCCATGATCAGTTGATGGCCATTTGGTTGCGACCCCAGGTCAGGTGAGGCAACCCGCTGAGTTTAGCA

"""
CLEAN_ID = "gi|2765658|emb|Z78533.1|CIZ78533"
AMBIG_ID = "gi|2765607|emb|Z78482.1|PEZ78482"

ACGT = st.text(alphabet=DNA_ALPHABET, max_size=300)


def write(tmp_path: Path, text: str, name: str = "x.fasta") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def shuffle_rows(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Each sequence's bases permuted: same composition, motifs destroyed."""
    g = torch.Generator().manual_seed(seed)
    return torch.gather(x, 1, torch.argsort(torch.rand(x.shape, generator=g), dim=1))


# --- alphabet ---------------------------------------------------------------------------------


@given(ACGT)
def test_decode_inverts_encode(s: str) -> None:
    tokens = encode(s)
    assert tokens.dtype == torch.int64 and tokens.shape == (len(s),)
    assert decode(tokens) == s


@given(ACGT)
def test_lowercase_is_accepted_and_output_is_uppercase(s: str) -> None:
    assert torch.equal(encode(s.lower()), encode(s))
    assert decode(encode(s.lower())) == s


def test_token_order_is_the_graphs_order() -> None:
    assert encode("ACGT").tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("text", "position", "letter"),
    [("ACGN", 4, "N"), ("ACrT", 3, "r"), ("AC-T", 3, "-"), ("A1", 2, "1"), ("A*", 2, "*")],
)
def test_encode_names_position_and_letter(text: str, position: int, letter: str) -> None:
    with pytest.raises(ValueError, match=rf"position {position}: .*{letter!r}"):
        encode(text)


def test_encode_never_maps_ambiguity_codes() -> None:
    for code in "NRYSWKMBDHVnrsywkmbdhv":
        with pytest.raises(ValueError, match="ambiguity code"):
            encode(code)


def test_decode_rejects_bad_tokens() -> None:
    with pytest.raises(ValueError, match="position 2: token id 4"):
        decode(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="1-D"):
        decode(torch.zeros(2, 2, dtype=torch.long))


@given(ACGT)
def test_reverse_complement_twice_is_identity(s: str) -> None:
    x = encode(s)
    assert torch.equal(reverse_complement(reverse_complement(x)), x)


def test_reverse_complement_matches_biopython() -> None:
    from Bio.Seq import reverse_complement as bio_rc

    s = "AACGTTTGCAGGCAT"
    assert decode(reverse_complement(encode(s))) == bio_rc(s)


def test_random_reverse_complement() -> None:
    x = torch.randint(0, 4, (2000, 7), generator=torch.Generator().manual_seed(0))
    y = random_reverse_complement(x, torch.Generator().manual_seed(1))
    flipped = (y != x).any(dim=1)
    assert torch.equal(y[flipped], reverse_complement(x[flipped]))
    assert 0.45 < flipped.float().mean().item() < 0.55  # p = 0.5 (palindromes count as kept)
    again = random_reverse_complement(x, torch.Generator().manual_seed(1))
    assert torch.equal(again, y)  # reproducible with a seeded generator
    assert torch.equal(random_reverse_complement(x, p=0.0), x)
    assert torch.equal(random_reverse_complement(x, p=1.0), reverse_complement(x))
    with pytest.raises(ValueError, match="probability"):
        random_reverse_complement(x, p=1.5)


# --- files ------------------------------------------------------------------------------------


def test_fasta_ambiguity_error_names_file_record_position(tmp_path: Path) -> None:
    path = write(tmp_path, ORCHIDS)
    with pytest.raises(ValueError) as err:
        read_fasta(path)  # "error" is the default
    msg = str(err.value)
    assert str(path) in msg and AMBIG_ID in msg and "#2" in msg
    assert "position 166" in msg and "'N'" in msg


def test_fasta_ambiguity_split(tmp_path: Path) -> None:
    records = read_fasta(write(tmp_path, ORCHIDS), ambiguous="split")
    assert [r.id for r in records] == [
        CLEAN_ID,
        f"{AMBIG_ID}:0-165",
        f"{AMBIG_ID}:166-245",
        f"{AMBIG_ID}:246-629",
    ]
    assert [r.start for r in records] == [0, 0, 166, 246]
    assert [r.tokens.numel() for r in records] == [740, 165, 79, 383]
    long_only = read_fasta(write(tmp_path, ORCHIDS), ambiguous="split", min_length=100)
    assert [r.id for r in long_only] == [CLEAN_ID, f"{AMBIG_ID}:0-165", f"{AMBIG_ID}:246-629"]


def test_fasta_ambiguity_skip(tmp_path: Path) -> None:
    records = read_fasta(write(tmp_path, ORCHIDS), ambiguous="skip")
    assert [r.id for r in records] == [CLEAN_ID]
    assert decode(records[0].tokens).startswith("CGTAACAAGGTTTCCGTAGG")


def test_split_at_runs_and_ends(tmp_path: Path) -> None:
    path = write(tmp_path, ">a\nNNacgtRYNcaN\n>b\nNNNN\n")
    records = read_fasta(path, ambiguous="split")
    assert [(r.id, decode(r.tokens)) for r in records] == [("a:2-6", "ACGT"), ("a:9-11", "CA")]


def test_soft_masked_input(tmp_path: Path) -> None:
    records = read_fasta(write(tmp_path, ">m soft-masked\nACGTacgtnnACGT\n"), ambiguous="split")
    assert [decode(r.tokens) for r in records] == ["ACGTACGT", "ACGT"]


@pytest.mark.parametrize("policy", ["split", "skip", "error"])
@pytest.mark.parametrize(
    ("bad", "why"), [("-", "gap"), ("5", "invalid"), ("*", "stop"), ("U", "RNA")]
)
def test_invalid_letters_raise_under_every_policy(
    tmp_path: Path, policy: str, bad: str, why: str
) -> None:
    path = write(tmp_path, f">ok\nACGT\n>r2 second\nACNG\nTT{bad}A\n")
    with pytest.raises(ValueError, match=why) as err:
        read_fasta(path, ambiguous=policy)  # type: ignore[arg-type]
    msg = str(err.value)
    assert str(path) in msg and "'r2'" in msg and "position 7" in msg and repr(bad) in msg


def test_bad_policy_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ambiguous must be"):
        read_fasta(write(tmp_path, ">a\nACGT\n"), ambiguous="map")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no fasta records"):
        read_fasta(write(tmp_path, "", name="empty.fasta"))


def test_fasta_round_trip(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (5, 133), generator=g)
    path = tmp_path / "out.fasta"
    write_fasta(path, x, ids=[f"s{i}" for i in range(5)])
    records = read_fasta(path)
    assert [r.id for r in records] == [f"s{i}" for i in range(5)]
    assert torch.equal(torch.stack([r.tokens for r in records]), x)
    write_fasta(path, ["acgt", "GGGGG"])  # ragged strings, default ids, upper-cased
    assert [(r.id, decode(r.tokens)) for r in read_fasta(path)] == [
        ("seq0", "ACGT"),
        ("seq1", "GGGGG"),
    ]


def test_fasta_gzip(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "x.fasta.gz"
    with gzip.open(path, "wt") as f:
        f.write(">z\nACGT\n")
    assert decode(read_fasta(path)[0].tokens) == "ACGT"


def test_write_fasta_errors(tmp_path: Path) -> None:
    path = tmp_path / "out.fasta"
    with pytest.raises(ValueError, match=r"sequence 1 \('b'\), position 2: .*'N'"):
        write_fasta(path, ["ACGT", "ANGT"], ids=["a", "b"])
    with pytest.raises(ValueError, match="whitespace"):
        write_fasta(path, ["ACGT"], ids=["a b"])
    with pytest.raises(ValueError, match="2 ids for 1 sequences"):
        write_fasta(path, ["ACGT"], ids=["a", "b"])


def _write_genbank(path: Path, seqs: dict[str, str]) -> None:
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    records = [
        SeqRecord(Seq(s), id=rid, name=rid.split(".")[0], annotations={"molecule_type": "DNA"})
        for rid, s in seqs.items()
    ]
    SeqIO.write(records, path, "genbank")


def test_genbank_read(tmp_path: Path) -> None:
    path = tmp_path / "x.gb"
    _write_genbank(path, {"X1.1": "ACGTACGTTTGA" * 10, "X2.1": "acgtNNacgt"})
    records = read_genbank(path, ambiguous="split")
    assert [r.id for r in records] == ["X1.1", "X2.1:0-4", "X2.1:6-10"]
    assert decode(records[0].tokens) == "ACGTACGTTTGA" * 10
    with pytest.raises(ValueError, match=r"x\.gb: record 'X2\.1' \(#2\), position 5: ambiguity"):
        read_genbank(path)


def test_genbank_without_sequence_is_an_error(tmp_path: Path) -> None:
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    path = tmp_path / "contig.gb"
    rec = SeqRecord(
        Seq(None, length=20), id="C1.1", name="C1", annotations={"molecule_type": "DNA"}
    )
    SeqIO.write([rec], path, "genbank")
    with pytest.raises(ValueError, match=r"'C1\.1'.*no sequence"):
        read_genbank(path)


# --- windows and coordinate splits -------------------------------------------------------------


def test_windows() -> None:
    x = torch.arange(10)
    assert windows(x, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]  # tail dropped
    assert windows(x, 4, stride=3).shape == (3, 4)
    assert windows(x, 11).shape == (0, 11)
    with pytest.raises(ValueError, match="1-D"):
        windows(x[None], 4)


@pytest.mark.parametrize("circular", [False, True])
@pytest.mark.parametrize("heldout_start", [None, 0, 3000])
@pytest.mark.parametrize("stride", [7, 50])
def test_split_by_coordinate_has_no_overlap(
    circular: bool, heldout_start: int | None, stride: int
) -> None:
    n, length = 10_000, 50
    genome = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(0))
    s = split_by_coordinate(
        genome,
        length,
        stride=stride,
        heldout_fraction=0.2,
        heldout_start=heldout_start,
        circular=circular,
    )
    h0, h1 = s.regions.heldout
    assert h1 - h0 == 2000
    assert s.train.shape[1] == s.heldout.shape[1] == length
    assert s.heldout.shape[0] == (2000 - length) // stride + 1
    for x, starts in ((s.train, s.train_starts), (s.heldout, s.heldout_starts)):
        assert len(x) == len(starts)
        for row, a in zip(x, starts.tolist(), strict=True):
            assert torch.equal(row, genome[a : a + length])  # windows are where they say
    # every held-out window is >= one window length from every training window
    tr = s.train_starts[:, None]
    ho = s.heldout_starts[None, :]
    shifts = (-n, 0, n) if circular else (0,)
    for shift in shifts:
        gap = torch.maximum(ho + shift - (tr + length), tr - (ho + shift + length))
        assert gap.min().item() >= length
    assert ((s.heldout_starts >= h0) & (s.heldout_starts + length <= h1)).all()


def test_split_errors() -> None:
    genome = torch.zeros(1000, dtype=torch.long)
    with pytest.raises(ValueError, match="cannot hold a window"):
        split_by_coordinate(genome, 200, heldout_fraction=0.1)
    with pytest.raises(ValueError, match="heldout_fraction"):
        split_by_coordinate(genome, 10, heldout_fraction=1.0)
    with pytest.raises(ValueError, match="heldout_start"):
        split_by_coordinate(genome, 10, heldout_start=950)
    with pytest.raises(ValueError, match="no room"):
        coordinate_regions(1000, 10, heldout_fraction=0.99)


# --- the shipped promoters ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def promoters() -> dict[str, torch.Tensor]:
    return {split: load_promoters(split) for split in ("train", "heldout")}  # type: ignore[misc]


def test_shipped_promoters(promoters: dict[str, torch.Tensor]) -> None:
    train, heldout = promoters["train"], promoters["heldout"]
    assert train.shape == (4058, PROMOTER_LENGTH) and heldout.shape == (458, PROMOTER_LENGTH)
    for x in (train, heldout):
        assert x.dtype == torch.int64 and ((x >= 0) & (x <= 3)).all()
    both = {decode(r) for r in torch.cat([train, heldout])}
    assert len(both) == len(train) + len(heldout)  # de-duplicated, across the split too
    with pytest.raises(ValueError, match="split must be"):
        load_promoters("test")  # type: ignore[arg-type]


@pytest.mark.parametrize("stem", ["ecoli_promoters", "ecoli_genes"])
def test_shipped_ids_follow_the_split_rule(stem: str) -> None:
    import importlib.resources
    import re

    data = importlib.resources.files("ddiff.domains") / "data"
    genome_length, block_start = 4_938_920, 4_938_920 - round(0.1 * 4_938_920)
    for split in ("train", "heldout"):
        with importlib.resources.as_file(data / f"{stem}_{split}.fasta") as path:
            ids = [r.id for r in read_fasta(path)]
        coords = [re.fullmatch(r"NC_008253\.1:(\d+)-(\d+)\(([+-])\)", i) for i in ids]
        assert all(coords)
        starts = np.array([int(m.group(1)) for m in coords if m])
        ends = np.array([int(m.group(2)) for m in coords if m])
        assert (ends - starts == PROMOTER_LENGTH).all()
        if split == "heldout":
            assert (starts >= block_start).all() and (ends <= genome_length).all()
        else:  # one window length from the held-out block, and from it across the origin
            assert (ends <= block_start - PROMOTER_LENGTH).all() and (
                starts >= PROMOTER_LENGTH
            ).all()


# --- the shipped labelled windows (promoters and genes) ----------------------------------------


@pytest.fixture(scope="module")
def labelled() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {split: load_labelled(split) for split in ("train", "heldout")}  # type: ignore[misc]


def test_shipped_labelled(
    labelled: dict[str, tuple[torch.Tensor, torch.Tensor]], promoters: dict[str, torch.Tensor]
) -> None:
    assert LABELS == ("promoter", "gene")
    counts = {"train": [4058, 3886], "heldout": [458, 437]}
    for split, (x, y) in labelled.items():
        assert x.shape == (sum(counts[split]), PROMOTER_LENGTH) and y.shape == (len(x),)
        assert x.dtype == y.dtype == torch.int64 and ((x >= 0) & (x <= 3)).all()
        assert torch.bincount(y).tolist() == counts[split]
        n = counts[split][0]
        assert (y[:n] == 0).all() and (y[n:] == 1).all()  # promoters first, then genes
        assert torch.equal(x[:n], promoters[split])
        assert torch.equal(x[n:], load_genes(split))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="split must be"):
        load_labelled("test")  # type: ignore[arg-type]


def test_shipped_labelled_windows_are_not_shared(
    labelled: dict[str, tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """No window (or its reverse complement) appears twice: not within a label, not across the
    two labels, not across the training/held-out split."""
    canonical = [
        min(decode(row), decode(reverse_complement(row)))
        for split in ("train", "heldout")
        for row in labelled[split][0]
    ]
    assert len(set(canonical)) == len(canonical)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_shipped_gene_windows_are_coding_in_frame(
    split: str, labelled: dict[str, tuple[torch.Tensor, torch.Tensor]]
) -> None:
    x, y = labelled[split]
    codons = x.unfold(1, 3, 3)  # [N, 50, 3], in frame from the window start
    packed = codons[..., 0] * 16 + codons[..., 1] * 4 + codons[..., 2]
    stops = torch.tensor([int(c, 4) for c in ("300", "302", "320")])  # TAA, TAG, TGA
    has_stop = torch.isin(packed, stops).any(dim=1)
    assert not has_stop[y == 1].any()
    # a real check: promoter windows, which are not coding, mostly do hold one in this frame
    assert has_stop[y == 0].double().mean() > 0.8


def test_shipped_files_match_the_readme_checksums() -> None:
    import hashlib
    import importlib.resources
    import re

    readme = (Path(__file__).resolve().parents[2] / "domains" / "dna" / "README.md").read_text()
    rows = re.findall(
        r"\| `ddiff/domains/data/([\w.]+)` \| .*? \| ([\d,]+) \| `([0-9a-f]{64})` \|", readme
    )
    names = {name for name, _, _ in rows}
    assert names == {
        f"ecoli_{stem}_{split}.fasta"
        for stem in ("promoters", "genes")
        for split in ("train", "heldout")
    }
    data = importlib.resources.files("ddiff.domains") / "data"
    for name, size, digest in rows:
        content = (data / name).read_bytes()
        assert len(content) == int(size.replace(",", "")), name
        assert hashlib.sha256(content).hexdigest() == digest, name


# --- metrics -----------------------------------------------------------------------------------


def test_kmer_counts_both_strands() -> None:
    fwd = kmer_counts(["AACG"], 2)
    both = kmer_counts(["AACG"], 2, both_strands=True)
    assert fwd.sum() == 3 and both.sum() == 6
    # AACG gives AA, AC, CG; its reverse complement CGTT gives CG, GT, TT
    assert both[int("12", 4)] == 2 and both[int("33", 4)] == 1 and fwd[int("33", 4)] == 0
    assert kmer_counts(["AACG"], 5).sum() == 0  # shorter than k: nothing


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_kmer_js_divergence(k: int, promoters: dict[str, torch.Tensor]) -> None:
    heldout = promoters["heldout"]
    assert kmer_js_divergence(heldout, heldout, k) == 0.0
    g = torch.Generator().manual_seed(k)
    uniform = torch.randint(0, 4, heldout.shape, generator=g)
    d_train = kmer_js_divergence(promoters["train"], heldout, k)
    d_uniform = kmer_js_divergence(uniform, heldout, k)
    assert 0.0 < d_train < d_uniform <= 1.0  # real data is closer than uniform noise
    poly_a = torch.zeros(3, 50, dtype=torch.long)
    assert kmer_js_divergence(poly_a, torch.full((3, 50), 3), k) == pytest.approx(1.0)  # disjoint


def test_kmer_js_divergence_strings_and_errors() -> None:
    assert kmer_js_divergence(["ACGTAC", "GG"], ["ACGTAC", "GG"], 3) == 0.0
    with pytest.raises(ValueError, match="no 3-mers in the samples"):
        kmer_js_divergence(["AC"], ["ACGT"], 3)
    with pytest.raises(ValueError, match="k must be"):
        kmer_js_divergence(["ACGT"], ["ACGT"], 13)
    with pytest.raises(TypeError, match="list of sequences"):
        kmer_js_divergence("ACGT", ["ACGT"], 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sequence 1: position 2"):
        kmer_js_divergence(["ACGT", "AN"], ["ACGT"], 3)


def test_gc_content(promoters: dict[str, torch.Tensor]) -> None:
    assert gc_content(["GGCC"]) == (1.0, 0.0)
    assert gc_content(["ATAT", "GCGC"]) == (0.5, 0.5)
    mean, std = gc_content(promoters["train"])
    assert 0.43 < mean < 0.48 and 0.06 < std < 0.09  # promoters are AT-rich (genome: 0.505)
    with pytest.raises(ValueError, match="empty"):
        gc_content(["ACGT", ""])


def test_copied_kmer_rate(promoters: dict[str, torch.Tensor]) -> None:
    train = promoters["train"]
    assert copied_kmer_rate(train[:300], train) == 1.0
    assert copied_kmer_rate(reverse_complement(train[:300]), train) == 1.0  # both strands
    g = torch.Generator().manual_seed(0)
    synthetic = torch.randint(0, 4, (300, 150), generator=g)
    assert copied_kmer_rate(reverse_complement(synthetic), synthetic, both_strands=False) == 0.0
    assert copied_kmer_rate(torch.randint(0, 4, (300, 150), generator=g), train) == 0.0
    # a sample with one 20-mer spliced in from training data counts as copied, a 19-mer does not
    fresh = torch.randint(0, 4, (2, 150), generator=g)
    fresh[0, 60:80] = train[7, 10:30]
    fresh[1, 60:79] = train[7, 10:29]
    fresh[1, 59], fresh[1, 79] = (train[7, 9] + 1) % 4, (train[7, 29] + 1) % 4  # no 20-mer by luck
    assert copied_kmer_rate(fresh[:1], train) == 1.0 and copied_kmer_rate(fresh[1:], train) == 0.0
    assert copied_kmer_rate(["ACGT"], train) == 0.0  # shorter than k


def test_pwm_hit_rates_count_hits_on_the_forward_strand() -> None:
    rates = pwm_hit_rates(["CCTATAATCC", "CCATTATACC", "CCCCCCCCCC"], threshold=1.0)
    assert rates["sigma70_-10"] == pytest.approx(1 / 3)  # the reverse complement is not scanned
    assert pwm_hit_rates(["TATAAT"], region=slice(1, None))["sigma70_-10"] == 0.0
    with pytest.raises(ValueError, match="threshold"):
        pwm_hit_rates(["ACGT"], threshold=1.2)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_shine_dalgarno_is_enriched_before_the_start_codon(
    split: str, promoters: dict[str, torch.Tensor]
) -> None:
    # Measured (domains/dna/README.md): Shine-Dalgarno within the last 20 bp in ~33% of
    # promoters vs <= 7% after shuffling each window (train and held-out alike). The -10/-35
    # boxes are NOT enriched over a composition-matched shuffle, so they are not asserted.
    x = promoters[split]
    last20 = slice(-20, None)
    real = pwm_hit_rates(x, region=last20)["shine_dalgarno"]
    for seed in range(3):
        shuffled = pwm_hit_rates(shuffle_rows(x, seed), region=last20)["shine_dalgarno"]
        assert real > 0.25 and real > 3 * shuffled
    if split == "train":  # over whole windows too, with enough windows to see it
        whole = pwm_hit_rates(x)["shine_dalgarno"]
        assert whole > 0.48 and whole > pwm_hit_rates(shuffle_rows(x, 0))["shine_dalgarno"] + 0.02


def test_non_fasta_text_names_the_file(tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\nACGT\n")
    with pytest.raises(ValueError, match=r"notes\.txt") as info:
        read_fasta(path)
    assert "\n" not in str(info.value)


def test_old_pwm_names_warn_and_agree() -> None:
    """`motif_rates` / `promoter_motifs` (a ddiff motif is a fixed run of tokens) still work."""
    from ddiff.eval import dna_metrics

    seqs = ["GGTATAATGG", "CCCCCCCCCC"]
    with pytest.warns(DeprecationWarning, match="use pwm_hit_rates"):
        old = dna_metrics.motif_rates(seqs, threshold=1.0)
    assert old == pwm_hit_rates(seqs, threshold=1.0)
    with pytest.warns(DeprecationWarning, match="use pwm_hit_rates"):
        dna_metrics.motif_rates(seqs)
    with pytest.warns(DeprecationWarning, match="use promoter_pwms"):
        assert set(dna_metrics.promoter_motifs()) == set(dna_metrics.promoter_pwms())
    with pytest.warns(DeprecationWarning, match="pwms="):
        assert pwm_hit_rates(seqs, motifs=dna_metrics.promoter_pwms()) == pwm_hit_rates(seqs)
