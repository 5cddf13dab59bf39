"""Build the shipped *E. coli* 536 promoter dataset from the raw RefSeq genome.

Predicts genes with pyrodigal (Prodigal, single-genome mode), takes the 150 bp upstream of every
start codon on the gene's strand, splits the windows by genome coordinate and writes two FASTA
files into the package (`ddiff/domains/data/`). Run from the repository root:

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
from ddiff.eval.dna_metrics import PROMOTER_CONSENSUS, gc_content, pwm_hit_rates

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


def upstream_windows(genome: str, length: int) -> tuple[list[Window], dict[str, int]]:
    finder = pyrodigal.GeneFinder(meta=False)
    finder.train(genome)
    genes = finder.find_genes(genome)
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


def split_and_deduplicate(
    windows: list[Window], genome_length: int, length: int, heldout_fraction: float
) -> tuple[list[Window], list[Window], dict[str, int]]:
    regions = coordinate_regions(
        genome_length, length, heldout_fraction=heldout_fraction, circular=True
    )
    sides: dict[str, list[Window]] = {"train": [], "heldout": []}
    stats = {"in_gap": 0, "dup_train": 0, "dup_heldout": 0, "heldout_in_train": 0}
    for w in windows:
        side = regions.assign(w.start, w.end)
        if side is None:
            stats["in_gap"] += 1
        else:
            sides[side].append(w)

    def canonical(seq: str) -> str:  # a window and its reverse complement are one sequence
        return min(seq, reverse_complement(seq))

    seen: set[str] = set()
    train = []
    for w in sides["train"]:
        key = canonical(w.seq)
        if key in seen:
            stats["dup_train"] += 1
            continue
        seen.add(key)
        train.append(w)
    train_keys = set(seen)
    heldout = []
    for w in sides["heldout"]:
        key = canonical(w.seq)
        if key in train_keys:
            stats["heldout_in_train"] += 1
        elif key in seen:
            stats["dup_heldout"] += 1
        else:
            seen.add(key)
            heldout.append(w)

    # The guarantee the split exists for: no held-out window overlaps (or comes within the gap
    # of) a training window, the origin included (the chromosome is circular).
    tr = np.array([(w.start, w.end) for w in train])
    ho = np.array([(w.start, w.end) for w in heldout])
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
        f"gap {gap} bp; overlap check passed "
        f"(closest held-out/training distance {min_distance(tr, ho, genome_length)} bp)"
    )
    return train, heldout, stats


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
    parser.add_argument("--random-windows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if pyrodigal.__version__ != PYRODIGAL_VERSION:
        print(
            f"warning: pyrodigal {pyrodigal.__version__}, the shipped files were built with "
            f"{PYRODIGAL_VERSION}; gene calls (and so the files) may differ"
        )
    print(f"genome: {args.genome.resolve()} sha256 {sha256(args.genome)}")
    accession, genome = read_genome(args.genome)
    gc = (genome.count("G") + genome.count("C")) / len(genome)
    print(f"{accession}: {len(genome):,} bp, GC {gc:.4f}; pyrodigal {pyrodigal.__version__}")

    windows, stats = upstream_windows(genome, args.length)
    train, heldout, split_stats = split_and_deduplicate(
        windows, len(genome), args.length, args.heldout_fraction
    )
    stats |= split_stats
    codons: dict[str, int] = {}
    for w in windows:
        codons[w.start_codon] = codons.get(w.start_codon, 0) + 1
    print(
        f"genes {stats['genes']}: {stats['no_start_codon']} without start codon, "
        f"{stats['off_end']} windows off the ends, {stats['non_acgt']} with non-ACGT -> "
        f"{len(windows)} windows (start codons {dict(sorted(codons.items()))}); "
        f"{stats['in_gap']} in the gap between blocks; duplicates removed: "
        f"{stats['dup_train']} in train, {stats['dup_heldout']} in held-out, "
        f"{stats['heldout_in_train']} held-out equal to a training window"
    )

    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("heldout", heldout)):
        path = args.out_dir / f"ecoli_promoters_{name}.fasta"
        write_fasta(path, [w.seq for w in part], ids=[w.record_id(accession) for w in part])
        seqs = [w.seq for w in part]
        mean, std = gc_content(seqs)
        strands = sum(w.strand == "+" for w in part)
        print(
            f"{name}: {len(part)} windows ({strands} +, {len(part) - strands} -), GC {mean:.4f} "
            f"+- {std:.4f}; {path.stat().st_size:,} bytes, sha256 {sha256(path)}"
        )

    motif_report(
        genome, [w.seq for w in train + heldout], args.length, args.random_windows, args.seed
    )


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
