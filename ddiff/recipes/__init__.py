"""Runnable recipes: train, sample, infill and evaluate on the shipped real data.

- `python -m ddiff.recipes.dna`: *E. coli* promoters; infill of the sigma-70 -35/-10 boxes.
- `python -m ddiff.recipes.protein`: UniProt proteins; infill around a fixed segment.
- `python -m ddiff.recipes.text`: State of the Union windows; a prompt and a span.

Each runs all its steps with no arguments (under 10 minutes on a 2-core CPU) and writes a
report; `--help` lists the options. Configuration files: `recipes/<name>.yaml` in the
repository (equal to the modules' defaults).
"""

__all__: list[str] = []
