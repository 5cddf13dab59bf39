"""Build the shipped UniProt protein dataset from the raw UniProtKB sample.

Keeps proteins of 50-256 residues written with the 20 canonical amino acids only, removes exact
duplicates, clusters the rest by single linkage at 50% local identity, holds out ~10% of the
clusters (by a hash of an accession), removes any held-out protein still >= 50% identical to a
training protein, and writes two gzipped FASTA files into the package (`ddiff/domains/data/`).
Run from the repository root:

    .venv/bin/python domains/protein/build_uniprot.py

Deterministic: two runs give byte-identical files. See `domains/protein/README.md`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from Bio import SeqIO

from ddiff.domains._seqio import open_text
from ddiff.domains.protein import PROTEIN_ALPHABET, decode, encode, read_fasta, write_fasta
from ddiff.eval.protein_metrics import (
    composition,
    composition_kl,
    kmer_js_divergence,
    local_identities,
    low_complexity_fraction,
    nearest_identity,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RAW = ROOT.parent / "shared/data/protein/uniprot_sample_mmseqs2_DB.fasta.gz"
DEFAULT_OUT = ROOT / "ddiff/domains/data"


@dataclass(frozen=True)
class Protein:
    id: str  # the UniProt FASTA id, e.g. "sp|Q8AWH3|SX17A_XENTR"
    seq: str

    @property
    def accession(self) -> str:
        return self.id.split("|")[1]

    @property
    def bucket(self) -> float:
        return accession_hash(self.accession)


def accession_hash(accession: str) -> float:
    """A stable pseudo-random number in [0, 1) from an accession (sha256, not the salted `hash`)."""
    digest = hashlib.sha256(accession.encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_raw(path: Path) -> tuple[list[Protein], Counter[str], int]:
    """Every canonical protein (ddiff's own reader, `ambiguous="skip"`), the letters of the
    dropped records and the number of records."""
    with open_text(path) as handle:
        raw = [(r.id, str(r.seq)) for r in SeqIO.parse(handle, "fasta")]
    kept = read_fasta(path, ambiguous="skip")
    proteins = [Protein(r.id, decode(r.tokens)) for r in kept]
    kept_ids = {p.id for p in proteins}
    dropped = Counter(
        letter
        for rid, seq in raw
        if rid not in kept_ids
        for letter in set(seq.upper()) - set(PROTEIN_ALPHABET)
    )
    for rid, _ in raw:
        if rid.count("|") != 2:
            raise SystemExit(f"{path}: record {rid!r} is not a UniProt id (db|accession|name)")
    return proteins, dropped, len(raw)


def capped(proteins: list[Protein], cap: int) -> list[Protein]:
    """At most `cap` proteins: the ones with the smallest hash (a random subset), in file order."""
    if len(proteins) <= cap:
        return proteins
    keep = {p.id for p in sorted(proteins, key=lambda p: (p.bucket, p.id))[:cap]}
    return [p for p in proteins if p.id in keep]


def contains_any(needles: list[str], haystack: list[str]) -> list[bool]:
    """For every needle, whether it is a substring of some haystack string."""
    joined = "\n".join(haystack)
    return [n in joined for n in needles]


def candidate_pairs(proteins: list[Protein], k: int, min_shared: int) -> np.ndarray:
    """Pairs `(i, j)`, `i < j`, sharing >= `min_shared` distinct k-mers, most shared first."""
    n = len(proteins)
    powers = 20 ** np.arange(k - 1, -1, -1, dtype=np.int64)
    words = [
        np.unique(np.lib.stride_tricks.sliding_window_view(encode(p.seq).numpy(), k) @ powers)
        for p in proteins
    ]
    owner = np.repeat(np.arange(n, dtype=np.int64), [w.size for w in words])
    flat = np.concatenate(words)
    order = np.argsort(flat, kind="stable")  # by k-mer, then by protein
    flat, owner = flat[order], owner[order]
    codes = []
    for d in range(1, flat.size):  # pair every entry with the one d places on, same k-mer
        same = flat[d:] == flat[:-d]
        if not same.any():
            break
        codes.append(owner[:-d][same] * n + owner[d:][same])
    pair_codes, shared = np.unique(np.concatenate(codes), return_counts=True)
    keep = shared >= min_shared
    pair_codes, shared = pair_codes[keep], shared[keep]
    order = np.lexsort((pair_codes, -shared))
    return np.stack(np.divmod(pair_codes[order], n), axis=1)


def cluster(
    proteins: list[Protein], k: int, min_shared: int, threshold: float
) -> tuple[np.ndarray, int]:
    """Single-linkage clusters: two proteins are linked when their best local alignment has
    identities >= `threshold` x the shorter length. Only pairs sharing >= `min_shared` k-mers
    are aligned, most similar first, and a pair already in one cluster is not aligned.

    Returns the cluster of every protein (numbered by first member) and the alignments run."""
    parent = list(range(len(proteins)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    aligned = 0
    for i, j in candidate_pairs(proteins, k, min_shared).tolist():
        ri, rj = find(i), find(j)
        if ri == rj:
            continue
        aligned += 1
        a, b = proteins[i].seq, proteins[j].seq
        if local_identities(a, b) >= threshold * min(len(a), len(b)):
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(len(proteins))])
    return np.unique(roots, return_inverse=True)[1], aligned


def write_gzipped_fasta(path: Path, proteins: list[Protein]) -> None:
    """FASTA via `write_fasta`, gzipped without a timestamp or file name (reproducible bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "x.fasta"
        write_fasta(plain, [p.seq for p in proteins], ids=[p.id for p in proteins])
        data = plain.read_bytes()
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    path.write_bytes(buffer.getvalue())


def length_summary(proteins: list[Protein]) -> str:
    lengths = np.array([len(p.seq) for p in proteins])
    q = np.percentile(lengths, [0, 10, 25, 50, 75, 90, 100]).astype(int).tolist()
    return (
        f"min {q[0]}, p10 {q[1]}, p25 {q[2]}, median {q[3]}, p75 {q[4]}, p90 {q[5]}, max {q[6]}; "
        f"mean {lengths.mean():.1f}; {lengths.sum():,} residues"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--min-length", type=int, default=50)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--heldout-fraction", type=float, default=0.1)
    parser.add_argument(
        "--max-identity",
        type=float,
        default=0.5,
        help="clustering threshold: identities / shorter length of the best local alignment",
    )
    parser.add_argument("--kmer", type=int, default=5, help="word length of the prefilter")
    parser.add_argument("--min-shared", type=int, default=2, help="shared words to align a pair")
    parser.add_argument("--max-train", type=int, default=6000)
    parser.add_argument("--max-heldout", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the reference baselines")
    args = parser.parse_args()

    print(f"raw: {args.raw.resolve()} sha256 {sha256(args.raw)}")
    canonical, dropped, n_raw = read_raw(args.raw)
    print(
        f"records: {n_raw:,}; with a letter outside the 20 canonical residues: "
        f"{n_raw - len(canonical):,} (records per letter: {dict(sorted(dropped.items()))})"
    )
    in_range = [p for p in canonical if args.min_length <= len(p.seq) <= args.max_length]
    print(
        f"canonical: {len(canonical):,}; {args.min_length} <= length <= {args.max_length}: "
        f"{len(in_range):,}"
    )
    seen: set[str] = set()
    unique = []
    for p in in_range:  # the first occurrence in file order is kept
        if p.seq not in seen:
            seen.add(p.seq)
            unique.append(p)
    print(f"exact duplicates removed: {len(in_range) - len(unique)} -> {len(unique):,}")

    labels, aligned = cluster(unique, args.kmer, args.min_shared, args.max_identity)
    sizes = np.bincount(labels)
    print(
        f"single-linkage clusters at {args.max_identity:.0%} identity (pairs sharing >= "
        f"{args.min_shared} distinct {args.kmer}-mers; {aligned:,} alignments): {sizes.size:,} "
        f"clusters, {int((sizes == 1).sum()):,} singletons, sizes "
        f"{dict(sorted(Counter(sizes.tolist()).items()))}"
    )
    # A cluster is held out when the hash of its alphabetically first accession is small: the
    # choice of that member does not depend on the hash, so every cluster has the same chance.
    first: dict[int, str] = {}
    for p, c in zip(unique, labels.tolist(), strict=True):
        first[c] = min(first.get(c, p.accession), p.accession)
    held = {c for c, acc in first.items() if accession_hash(acc) < args.heldout_fraction}
    train = [p for p, c in zip(unique, labels.tolist(), strict=True) if c not in held]
    candidates = [p for p, c in zip(unique, labels.tolist(), strict=True) if c in held]
    print(
        f"split by cluster, sha256(first accession) < {args.heldout_fraction}: {len(held)} "
        f"clusters held out; {len(train):,} training, {len(candidates):,} held-out candidates"
    )
    train = capped(train, args.max_train)
    print(f"training capped at {args.max_train:,}: {len(train):,}")

    # Safety net for pairs the k-mer prefilter missed: nearest_identity shortlists by 3-mers.
    train_seqs = [p.seq for p in train]
    identity = nearest_identity([p.seq for p in candidates], train_seqs)
    in_train = np.array(contains_any([p.seq for p in candidates], train_seqs))
    has_train = np.array([any(t in p.seq for t in train_seqs) for p in candidates])
    leak = (identity >= args.max_identity) | in_train | has_train
    kept = [i for i, bad in enumerate(leak.tolist()) if not bad]
    heldout = capped([candidates[i] for i in kept], args.max_heldout)
    shipped = {p.id for p in heldout}
    heldout_identity = identity[[i for i in kept if candidates[i].id in shipped]]
    print(
        f"held-out candidates still near a training protein, removed: {int(leak.sum())} "
        f"(nearest_identity >= {args.max_identity}: {int((identity >= args.max_identity).sum())}; "
        f"substring of a training protein: {int(in_train.sum())}; containing one: "
        f"{int(has_train.sum())}); capped at {args.max_heldout:,}: {len(heldout):,}"
    )

    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("heldout", heldout)):
        path = args.out_dir / f"uniprot_{name}.fasta.gz"
        write_gzipped_fasta(path, part)
        swissprot = sum(p.id.startswith("sp|") for p in part)
        print(
            f"{name}: {len(part):,} proteins ({swissprot:,} Swiss-Prot, "
            f"{len(part) - swissprot:,} TrEMBL); lengths {length_summary(part)}\n"
            f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
            f"{path.stat().st_size:,} bytes, sha256 {sha256(path)}"
        )
    reference_report(train, heldout, heldout_identity, args.seed)


def reference_report(
    train: list[Protein], heldout: list[Protein], heldout_identity: np.ndarray, seed: int
) -> None:
    """Composition and what each metric scores on real and null data (a Markdown table)."""
    tr, ho = [p.seq for p in train], [p.seq for p in heldout]
    comp = {name: composition(s) for name, s in (("train", tr), ("heldout", ho))}
    print("\ncomposition (%):\n| set | " + " | ".join(PROTEIN_ALPHABET) + " |")
    print("|---" * 21 + "|")
    for name, c in comp.items():
        print(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in c.tolist()) + " |")

    rng = np.random.default_rng(seed)
    lengths = [len(s) for s in ho]
    sets = {
        "training (all)": tr,
        f"training ({len(ho)}, seed {seed})": [
            tr[i] for i in np.sort(rng.permutation(len(tr))[: len(ho)])
        ],
        "held-out shuffled": ["".join(rng.permutation(list(s))) for s in ho],
        "uniform random": [
            "".join(np.array(list(PROTEIN_ALPHABET))[rng.integers(0, 20, n)]) for n in lengths
        ],
    }
    ident_sample = np.sort(rng.permutation(len(ho))[:100])
    print(
        "\nmetrics against the held-out set (nearest identity to the training set: all held-out "
        f"proteins, 100 of the others, seed {seed}):\n"
        "| set | composition KL | 2-mer JS | 3-mer JS | low-complexity | nearest identity "
        "mean / median / max |\n|---|---|---|---|---|---|"
    )
    rows = {"held-out itself": ho, **sets}
    for name, seqs in rows.items():
        if name.startswith("training"):
            ident = "1 (members)"
        else:
            ids = (
                heldout_identity
                if name == "held-out itself"
                else nearest_identity([seqs[i] for i in ident_sample], tr)
            )
            ident = f"{ids.mean():.3f} / {np.median(ids):.3f} / {ids.max():.3f}"
        print(
            f"| {name} | {composition_kl(seqs, ho):.4f} | {kmer_js_divergence(seqs, ho, 2):.4f} "
            f"| {kmer_js_divergence(seqs, ho, 3):.4f} | {low_complexity_fraction(seqs):.4f} "
            f"| {ident} |"
        )
    hist = np.histogram(heldout_identity, bins=[0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0])[0].tolist()
    print(f"\nheld-out nearest identity to training: counts in [0, .1, .2, .3, .4, .5, 1]: {hist}")


if __name__ == "__main__":
    main()
