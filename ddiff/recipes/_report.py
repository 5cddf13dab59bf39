"""Plots (matplotlib, Agg) and Markdown helpers for the recipe reports."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ddiff.recipes._common import atomic_path

# Colours of the series that appear in several plots, so a reader can follow them.
COLOURS = {
    "held-out": "#222222",
    "samples": "#1f77b4",
    "infill": "#2ca02c",
    "real": "#7f7f7f",
    "markov": "#ff7f0e",
    "shuffled": "#d62728",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede the pyplot import
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> None:
    """Save a figure as PNG atomically and close it."""
    plt = _pyplot()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def new_figure(
    width: float = 7.0, height: float = 4.0, nrows: int = 1, ncols: int = 1
) -> tuple[Any, Any]:
    """A figure and its axes (one axes, or a 1-D array of them)."""
    plt = _pyplot()
    return plt.subplots(nrows, ncols, figsize=(width, height))


def plot_training_curves(
    logs: Mapping[str, Sequence[tuple[int, float]]],
    path: Path,
    unit: str,
    references: Mapping[str, float] | None = None,
) -> bool:
    """Training loss (bits per token, smoothed) and validation bound against steps.

    The training loss is the one-time Monte Carlo estimate of the bound's integrand per token
    (nats; plotted in bits), so both curves estimate the same quantity: the bound in bits per
    token (the prior term is 0 for absorbing graphs and tiny otherwise).

    Returns:
        False (and no file) when there are no logs.
    """
    loss = logs.get("train/loss", [])
    val = logs.get("val/bits_per_token", [])
    if not loss and not val:
        return False
    fig, ax = new_figure(7.0, 4.0)
    levels = [v for _, v in val] + list((references or {}).values())
    if loss:
        steps = np.array([s for s, _ in loss])
        bits = np.array([v for _, v in loss]) / math.log(2.0)
        ax.plot(steps, bits, color="#c6dbef", lw=0.7, label="training loss (one batch)")
        # One batch is a one-time-per-sequence estimate: noisy. A running mean over ~1/8 of
        # the run shows the trend.
        w = min(max(bits.size // 8, 1), bits.size)
        smooth = np.convolve(bits, np.ones(w) / w, mode="valid")
        ax.plot(
            steps[w - 1 :],
            smooth,
            color=COLOURS["samples"],
            lw=1.8,
            label=f"training loss (mean of {w} batches)",
        )
        levels += smooth[smooth.size // 10 :].tolist()
    if val:
        vs = np.array([s for s, _ in val])
        vb = np.array([v for _, v in val])
        err = dict(logs.get("val/stderr_bits_per_token", []))
        ax.errorbar(
            vs,
            vb,
            yerr=[err.get(int(s), 0.0) for s in vs],
            color=COLOURS["held-out"],
            marker="o",
            ms=4,
            lw=1.4,
            capsize=2,
            label="held-out bound (EMA weights)",
        )
    for (name, value), style in zip((references or {}).items(), ("--", ":", "-."), strict=False):
        ax.axhline(value, color=COLOURS["markov"], ls=style, lw=1.2, label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"bits per {unit}")
    levels = [v for v in levels if math.isfinite(v)]
    if levels:  # zoom on the converged range: the first steps are far above it
        low, high = min(levels), max(levels)
        pad = max(high - low, 1e-3)
        ax.set_ylim(low - 0.3 * pad, high + 0.3 * pad)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Training: loss and held-out likelihood bound")
    save_figure(fig, path)
    return True


# -- sequence logos -----------------------------------------------------------------------------------

# Conventional nucleotide colours (as in WebLogo); other letters get a palette.
_LETTER_COLOURS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839"}


def _letter_colour(letter: str, index: int) -> str:
    if letter in _LETTER_COLOURS:
        return _LETTER_COLOURS[letter]
    palette = [
        "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e",
        "#e6ab02", "#a6761d", "#666666", "#1f78b4", "#b2df8a",
    ]  # fmt: skip
    return palette[index % len(palette)]


def information_content(freqs: np.ndarray) -> np.ndarray:
    r"""Per position, $\log_2 S - H$ bits (`freqs` `[positions, S]`, rows sum to 1)."""
    s = freqs.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nansum(np.where(freqs > 0, freqs * np.log2(freqs), 0.0), axis=1)
    return math.log2(s) - h


def draw_logo(
    ax: Any,
    freqs: np.ndarray,
    alphabet: str,
    first_position: int = 0,
    highlight: Sequence[tuple[int, int]] = (),
) -> None:
    """Draw a sequence logo: at each position the letters stacked by frequency, the stack as
    tall as the position's information content (Schneider & Stephens, NAR 18:6097, 1990).

    Args:
        ax: matplotlib axes.
        freqs: `[positions, len(alphabet)]` letter frequencies.
        alphabet: the letters, in column order.
        first_position: the sequence coordinate of row 0 (for the x axis).
        highlight: `(start, end)` coordinate ranges to shade (the fixed motifs).
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    font = FontProperties(family="DejaVu Sans", weight="bold")
    ic = information_content(freqs)
    for start, end in highlight:
        ax.axvspan(start - 0.5, end - 0.5, color="#fff3b0", zorder=0)
    for row, (p, height) in enumerate(zip(freqs, ic, strict=True)):
        x = first_position + row
        y = 0.0
        for k in np.argsort(p):  # smallest at the bottom, the dominant letter on top
            h = float(p[k] * height)
            if h <= 1e-3:
                continue
            letter = alphabet[k]
            path = TextPath((0, 0), letter, size=1, prop=font)
            box = path.get_extents()
            transform = (
                Affine2D()
                .translate(-box.x0, -box.y0)
                .scale(0.9 / max(box.width, 1e-6), h / max(box.height, 1e-6))
                .translate(x - 0.45, y)
            )
            ax.add_patch(
                PathPatch(
                    transform.transform_path(path),
                    color=_letter_colour(letter, int(k)),
                    lw=0,
                    zorder=2,
                )
            )
            y += h
    ax.set_xlim(first_position - 0.6, first_position + len(freqs) - 0.4)
    ax.set_ylim(0, math.log2(len(alphabet)))
    ax.set_ylabel("bits")


def position_frequencies(tokens: np.ndarray, num_tokens: int) -> np.ndarray:
    """`[L, num_tokens]` per-position token frequencies of aligned sequences `[N, L]`."""
    counts = np.stack([np.bincount(col, minlength=num_tokens) for col in tokens.T])
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


# -- Markdown -----------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a Markdown table (`-` for missing)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> str:
    """A Markdown table; numbers formatted with `fmt`."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v, digits) for v in row) + " |")
    return "\n".join(lines)


def pm(value: float | None, stderr: float | None, digits: int = 3) -> str:
    """`value ± stderr`."""
    if value is None or not math.isfinite(value):
        return "-"
    if stderr is None or not math.isfinite(stderr):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {stderr:.{digits}f}"
