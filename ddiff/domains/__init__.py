"""Domains: alphabets, readers and writers, datasets and metrics for real sequence data.

Each domain is its own module so that its optional dependencies load only when it is used:
`ddiff.domains.dna` needs biopython (the `domains` extra). Domains never build a rate matrix or
a schedule; they turn files into token tensors and samples back into sequences.
"""

__all__: list[str] = []
