"""Build the shipped *E. coli* 536 promoter and gene datasets from the raw RefSeq genome.

Predicts genes with pyrodigal (Prodigal, single-genome mode), takes the 150 bp upstream of every
start codon on the gene's strand (label "promoter") and one in-frame 150 bp window from the
middle of every long enough coding sequence (label "gene"), splits both by genome coordinate
with one rule and writes four FASTA files into the package (`ddiff/domains/data/`). Run from
the repository root:

    .venv/bin/pip install pyrodigal==3.7.1   # GPL-3: needed here only, never by ddiff
    .venv/bin/python domains/dna/build_promoters.py

Deterministic: no randomness reaches the dataset; the random genome windows used for the
printed motif baseline come from a seeded generator. See README.md next to this script.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyrodigal
from Bio import SeqIO
from Bio.Seq import reverse_complement

from ddiff.domains.dna import coordinate_regions, write_fasta
from ddiff.eval.dna_metrics import (
    PROMOTER_CONSENSUS,
    gc_content,
    kmer_js_divergence,
    pwm_hit_rates,
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_GENOME = REPO / ".." / "shared" / "data" / "dna" / "ecoli536_NC_008253.fna.gz"
DEFAULT_OUT = REPO / "ddiff" / "domains" / "data"
PYRODIGAL_VERSION = (
    "3.7.1"  # the version that built the shipped files; others may predict differently
)
ACGT = re.compile(r"^[ACGT]*$")


@dataclass(frozen=True)
class Window:
    start: int  # 0-based genome coordinate, end exclusive
    end: int
    strand: str  # "+" or "-": the gene's strand; the sequence reads 5'->3' on it
    seq: str
    start_codon: str

    def record_id(self, accession: str) -> str:
        # bedtools getfasta -s naming: 0-based start, exclusive end, strand in parentheses.
        return f"{accession}:{self.start}-{self.end}({self.strand})"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_genome(path: Path) -> tuple[str, str]:
    with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as handle:
        records = list(SeqIO.parse(handle, "fasta"))
    if len(records) != 1:
        raise SystemExit(f"{path}: expected one chromosome record, found {len(records)}")
    rec = records[0]
    # NCBI's old-style id "gi|110640213|ref|NC_008253.1|": keep the accession.version.
    match = re.search(r"ref\|([^|]+)\|", rec.id)
    return (match.group(1) if match else rec.id), str(rec.seq).upper()


def predict_genes(genome: str) -> pyrodigal.Genes:
    finder = pyrodigal.GeneFinder(meta=False)
    finder.train(genome)
    return finder.find_genes(genome)


def upstream_windows(
    genome: str, genes: pyrodigal.Genes, length: int
) -> tuple[list[Window], dict[str, int]]:
    stats = {"genes": len(genes), "no_start_codon": 0, "off_end": 0, "non_acgt": 0}
    out = []
    for gene in genes:
        if gene.start_type == "Edge":  # truncated at the sequence end: no start codon
            stats["no_start_codon"] += 1
            continue
        # pyrodigal: 1-based inclusive begin..end; the start codon is at `begin` on the + strand
        # and at `end` (read backwards) on the - strand.
        if gene.strand == 1:
            start, end = gene.begin - 1 - length, gene.begin - 1
        else:
            start, end = gene.end, gene.end + length
        if start < 0 or end > len(genome):
            stats["off_end"] += 1
            continue
        seq = genome[start:end]
        if not ACGT.match(seq):
            stats["non_acgt"] += 1
            continue
        strand = "+" if gene.strand == 1 else "-"
        if strand == "-":
            seq = reverse_complement(seq)
        out.append(Window(start, end, strand, seq, gene.start_type))
    out.sort(key=lambda w: (w.start, w.strand))
    return out, stats


STOP_CODONS = ("TAA", "TAG", "TGA")  # translation table 11, the one Prodigal uses for E. coli


def gene_windows(
    genome: str, genes: pyrodigal.Genes, length: int, margin: int
) -> tuple[list[Window], dict[str, int]]:
    """One window per gene from the middle of its coding sequence, on the gene's strand, in
    frame (its offset from the first base of the start codon is a multiple of 3) and at least
    `margin` bp from both ends of the CDS (start codon and stop codon included in the CDS)."""
    stats = {"genes": len(genes), "partial": 0, "too_short": 0, "non_acgt": 0}
    out = []
    for gene in genes:
        if gene.partial_begin or gene.partial_end:  # runs off a sequence end: no frame anchor
            stats["partial"] += 1
            continue
        cds = gene.end - gene.begin + 1  # pyrodigal: 1-based inclusive, stop codon included
        if cds < length + 2 * margin:
            stats["too_short"] += 1
            continue
        # Centre the window, then move it back to the codon boundary. With cds >= length +
        # 2 * margin and margin a multiple of 3, margin <= offset and offset + length <= cds -
        # margin.
        offset = (cds - length) // 2
        offset -= offset % 3
        # On the - strand the CDS reads backwards from `end`.
        start = gene.begin - 1 + offset if gene.strand == 1 else gene.end - offset - length
        end = start + length
        seq = genome[start:end]
        if not ACGT.match(seq):
            stats["non_acgt"] += 1
            continue
        strand = "+" if gene.strand == 1 else "-"
        if strand == "-":
            seq = reverse_complement(seq)
        stops = [i for i in range(0, length - 2, 3) if seq[i : i + 3] in STOP_CODONS]
        if stops:  # a window inside a predicted CDS, in frame, cannot hold a stop codon
            raise SystemExit(
                f"gene {gene.begin}..{gene.end} ({strand}): in-frame stop codon at window "
                f"offset {stops[0]}; the frame arithmetic is wrong"
            )
        out.append(Window(start, end, strand, seq, gene.start_type))
    out.sort(key=lambda w: (w.start, w.strand))
    return out, stats


def canonical(seq: str) -> str:  # a window and its reverse complement are one sequence
    return min(seq, reverse_complement(seq))


def split_and_deduplicate(
    labelled: dict[str, list[Window]], genome_length: int, length: int, heldout_fraction: float
) -> tuple[dict[str, tuple[list[Window], list[Window]]], dict[str, dict[str, int]]]:
    """Split every label's windows by coordinate with one rule, then de-duplicate across all.

    Labels are handled in the order given, and an earlier label wins: a later label's window
    equal to any earlier label's window (either strand, either side) is removed, so the first
    label's windows do not depend on the later ones. Within a label, training keeps the first
    window in coordinate order; a held-out window equal to any training window (any label) or
    to an earlier held-out window is removed.
    """
    regions = coordinate_regions(
        genome_length, length, heldout_fraction=heldout_fraction, circular=True
    )
    seen: set[str] = set()  # every kept window of every label, both sides
    train_keys: set[str] = set()  # every kept training window of every label
    out: dict[str, tuple[list[Window], list[Window]]] = {}
    stats: dict[str, dict[str, int]] = {}
    for label, windows in labelled.items():
        st = stats[label] = {
            "in_gap": 0,
            "dup_train": 0,
            "dup_heldout": 0,
            "heldout_in_train": 0,
            "earlier_label": 0,
        }
        earlier = set(seen)
        sides: dict[str, list[Window]] = {"train": [], "heldout": []}
        for w in windows:
            side = regions.assign(w.start, w.end)
            if side is None:
                st["in_gap"] += 1
            else:
                sides[side].append(w)
        train = []
        for w in sides["train"]:
            key = canonical(w.seq)
            if key in earlier:
                st["earlier_label"] += 1
            elif key in seen:
                st["dup_train"] += 1
            else:
                seen.add(key)
                train_keys.add(key)
                train.append(w)
        heldout = []
        for w in sides["heldout"]:
            key = canonical(w.seq)
            if key in train_keys:
                st["heldout_in_train"] += 1
            elif key in earlier:
                st["earlier_label"] += 1
            elif key in seen:
                st["dup_heldout"] += 1
            else:
                seen.add(key)
                heldout.append(w)
        out[label] = (train, heldout)

    # The guarantee the split exists for: no held-out window (of any label) overlaps, or comes
    # within the gap of, a training window (of any label), the origin included (the chromosome
    # is circular).
    tr = np.array([(w.start, w.end) for train, _ in out.values() for w in train])
    ho = np.array([(w.start, w.end) for _, heldout in out.values() for w in heldout])
    gap = regions.gap
    for shift in (-genome_length, 0, genome_length):
        near = (ho[:, None, 0] + shift < tr[None, :, 1] + gap) & (
            tr[None, :, 0] < ho[:, None, 1] + shift + gap
        )
        if near.any():
            raise SystemExit(
                "split check failed: a held-out window is within the gap of a training one"
            )
    print(
        f"split: held-out block [{regions.heldout[0]}, {regions.heldout[1]}) "
        f"(last {heldout_fraction:.0%} of the coordinates), training regions {regions.train}, "
        f"gap {gap} bp; overlap check passed over all labels "
        f"(closest held-out/training distance {min_distance(tr, ho, genome_length)} bp)"
    )
    return out, stats


def min_distance(tr: np.ndarray, ho: np.ndarray, genome_length: int) -> int:
    best = genome_length
    for shift in (-genome_length, 0, genome_length):
        d = np.maximum(
            ho[:, None, 0] + shift - tr[None, :, 1], tr[None, :, 0] - ho[:, None, 1] - shift
        )
        best = min(best, int(d.min()))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genome", type=Path, default=DEFAULT_GENOME)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--length", type=int, default=150)
    parser.add_argument("--heldout-fraction", type=float, default=0.1)
    parser.add_argument(
        "--gene-margin", type=int, default=30, help="bp excluded at each end of a CDS"
    )
    parser.add_argument("--random-windows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.gene_margin < 0 or args.gene_margin % 3:
        parser.error(f"--gene-margin must be a multiple of 3 >= 0, got {args.gene_margin}")

    if pyrodigal.__version__ != PYRODIGAL_VERSION:
        print(
            f"warning: pyrodigal {pyrodigal.__version__}, the shipped files were built with "
            f"{PYRODIGAL_VERSION}; gene calls (and so the files) may differ"
        )
    print(f"genome: {args.genome.resolve()} sha256 {sha256(args.genome)}")
    accession, genome = read_genome(args.genome)
    gc = (genome.count("G") + genome.count("C")) / len(genome)
    print(f"{accession}: {len(genome):,} bp, GC {gc:.4f}; pyrodigal {pyrodigal.__version__}")

    genes = predict_genes(genome)
    windows, stats = upstream_windows(genome, genes, args.length)
    inside, gene_stats = gene_windows(genome, genes, args.length, args.gene_margin)
    parts, split_stats = split_and_deduplicate(
        {"promoters": windows, "genes": inside}, len(genome), args.length, args.heldout_fraction
    )
    stats |= split_stats["promoters"]
    codons: dict[str, int] = {}
    for w in windows:
        codons[w.start_codon] = codons.get(w.start_codon, 0) + 1
    print(
        f"genes {stats['genes']}: {stats['no_start_codon']} without start codon, "
        f"{stats['off_end']} windows off the ends, {stats['non_acgt']} with non-ACGT -> "
        f"{len(windows)} promoter windows (start codons {dict(sorted(codons.items()))}); "
        f"{stats['in_gap']} in the gap between blocks; duplicates removed: "
        f"{stats['dup_train']} in train, {stats['dup_heldout']} in held-out, "
        f"{stats['heldout_in_train']} held-out equal to a training window"
    )
    gs = gene_stats | split_stats["genes"]
    print(
        f"genes {gs['genes']}: {gs['partial']} partial, {gs['too_short']} shorter than "
        f"{args.length} + 2 * {args.gene_margin} bp, {gs['non_acgt']} with non-ACGT -> "
        f"{len(inside)} gene windows (no in-frame stop codon in any); {gs['in_gap']} in the gap "
        f"between blocks; removed: {gs['earlier_label']} equal to a promoter window, "
        f"{gs['dup_train']} duplicates in train, {gs['dup_heldout']} in held-out, "
        f"{gs['heldout_in_train']} held-out equal to a training window"
    )

    args.out_dir.mkdir(parents=True, exist_ok=True)
    for label, (train, heldout) in parts.items():
        for name, part in (("train", train), ("heldout", heldout)):
            path = args.out_dir / f"ecoli_{label}_{name}.fasta"
            write_fasta(path, [w.seq for w in part], ids=[w.record_id(accession) for w in part])
            seqs = [w.seq for w in part]
            mean, std = gc_content(seqs)
            strands = sum(w.strand == "+" for w in part)
            print(
                f"{label} {name}: {len(part)} windows ({strands} +, {len(part) - strands} -), "
                f"GC {mean:.4f} +- {std:.4f}; {path.stat().st_size:,} bytes, "
                f"sha256 {sha256(path)}"
            )
    separability_report(parts)

    promoters = [w.seq for w in parts["promoters"][0] + parts["promoters"][1]]
    motif_report(genome, promoters, args.length, args.random_windows, args.seed)


def separability_report(parts: dict[str, tuple[list[Window], list[Window]]]) -> None:
    """k-mer JS (bits) between the labels' held-out sets and between each label's training and
    held-out sets: how far apart the labels are, against how far apart the splits are."""
    seqs = {(label, i): [w.seq for w in part[i]] for label, part in parts.items() for i in (0, 1)}
    (a, b) = parts
    pairs = {
        f"{a} held-out vs {b} held-out": (seqs[a, 1], seqs[b, 1]),
        f"{a} training vs held-out": (seqs[a, 0], seqs[a, 1]),
        f"{b} training vs held-out": (seqs[b, 0], seqs[b, 1]),
    }
    print("\nk-mer JS (bits)\n| sets | k = 3 | k = 6 |\n|---|---|---|")
    for name, (x, y) in pairs.items():
        js = [kmer_js_divergence(x, y, k) for k in (3, 6)]
        print(f"| {name} | " + " | ".join(f"{d:.4f}" for d in js) + " |")


def motif_report(genome: str, promoters: list[str], length: int, n_random: int, seed: int) -> None:
    """Motif rates in the promoters vs two nulls: random genome windows (random strand) and the
    promoters shuffled base by base (same composition). Printed as a Markdown table."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(genome) - length + 1, size=n_random)
    flips = rng.random(n_random) < 0.5
    background = [
        reverse_complement(genome[s : s + length]) if f else genome[s : s + length]
        for s, f in zip(starts.tolist(), flips.tolist(), strict=True)
    ]
    shuffled = ["".join(rng.permutation(list(p))) for p in promoters]
    sets = {"promoters": promoters, "random windows": background, "shuffled promoters": shuffled}
    for name, seqs in sets.items():
        mean, std = gc_content(seqs)
        print(f"{name}: n={len(seqs):,}, GC {mean:.4f} +- {std:.4f}")
    print(
        f"\nfraction of windows with >= 1 hit on the gene strand (random windows: seed {seed}):\n"
        "| motif | scan | promoters | random windows | shuffled promoters |\n"
        "|---|---|---|---|---|"
    )
    scans = {
        "exact, whole window": (1.0, None),
        "PWM >= 0.8, whole window": (0.8, None),
        "exact, last 20 bp": (1.0, slice(-20, None)),
        "PWM >= 0.8, last 20 bp": (0.8, slice(-20, None)),
    }
    rates = {
        (scan, set_name): pwm_hit_rates(seqs, threshold=t, region=r)
        for scan, (t, r) in scans.items()
        for set_name, seqs in sets.items()
    }
    for motif, consensus in PROMOTER_CONSENSUS.items():
        for scan in scans:
            cells = [rates[scan, set_name][motif] for set_name in sets]
            print(
                f"| {motif} {consensus} | {scan} | " + " | ".join(f"{c:.2%}" for c in cells) + " |"
            )


if __name__ == "__main__":
    main()
