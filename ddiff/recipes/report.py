"""The recipe report: one skeleton for every task, plots (matplotlib, Agg) and Markdown helpers.

`write_report` writes report.md: the model and data, the likelihood table (bound, the task's
Markov baseline, their paired difference), the samples-against-baselines table and figures,
the infill check, and how the samples were drawn. A task fills in its rows, figures and
paragraphs through its hooks (`ddiff.recipes.task.Task`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ddiff.io import atomic_path, write_text

if TYPE_CHECKING:
    from ddiff.recipes.task import Evaluation, Task

# Colours of the series that appear in several plots, so a reader can follow them.
COLOURS = {
    "held-out": "#222222",
    "samples": "#1f77b4",
    "infill": "#2ca02c",
    "real": "#7f7f7f",
    "markov": "#ff7f0e",
    "shuffled": "#d62728",
}


def set_colour(name: str) -> str:
    """The colour of a compared set, by its report name (samples, real, baseline, ...)."""
    for prefix, key in (
        ("diffusion", "samples"),
        ("real", "real"),
        ("shuffled", "shuffled"),
        ("held-out", "held-out"),
        ("infill", "infill"),
    ):
        if name.startswith(prefix):
            return COLOURS[key]
    return COLOURS["markov"]


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


def finish(fig: Any, ax: Any, path: Path, caption: str) -> tuple[str, str]:
    """Grid and legend on `ax`, save `fig` to `path`; `(file name, caption)` for the report."""
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return path.name, caption


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
        err = dict(
            logs.get("val/mc_stderr_bits_per_token", logs.get("val/stderr_bits_per_token", []))
        )
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
    ax.set_title(
        "Training: loss and held-out likelihood bound"
        if val
        else "Training loss (no held-out bound: training ended before the first validation)"
    )
    save_figure(fig, path)
    return True


def plot_by_set(
    metrics: Mapping[str, Mapping[str, Any]],
    xs: Sequence[int],
    key: str,
    path: Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    caption: str,
) -> tuple[str, str]:
    """One line per compared set (the held-out reference left out): `metrics[set][key.format(x)]`
    against `x`, on a log scale; `(file name, caption)`."""
    fig, ax = new_figure(6.0, 3.8)
    for name, values in metrics.items():
        if not name.startswith("held-out"):
            ys = [values[key.format(x)] for x in xs]
            ax.plot(xs, ys, marker="o", color=set_colour(name), label=name)
    ax.set(yscale="log", xticks=list(xs), xlabel=xlabel, ylabel=ylabel, title=title)
    return finish(fig, ax, path, caption)


def histograms(
    series: Mapping[str, Sequence[float] | np.ndarray],
    bins: np.ndarray,
    path: Path,
    *,
    xlabel: str,
    title: str,
    caption: str,
    ylabel: str = "density",
) -> tuple[str, str]:
    """Step histograms of a per-sequence statistic, one per set (the held-out set filled);
    `(file name, caption)`."""
    fig, ax = new_figure(6.0, 3.8)
    for name, values in series.items():
        style: dict[str, Any] = (
            {"alpha": 0.25} if name.startswith("held-out") else {"histtype": "step", "lw": 1.6}
        )
        ax.hist(values, bins=bins, density=True, color=set_colour(name), label=name, **style)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return finish(fig, ax, path, caption)


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


def infill_logo(
    ev: Evaluation,
    directory: Path,
    alphabet: str,
    num_states: int,
    heldout_rows: Any = None,
    flank: int = 12,
) -> tuple[str, str]:
    """Logos of the infilled rows around the fixed motifs (shaded), and of the held-out rows at
    the same positions; `(file name, caption)`."""
    assert ev.infill is not None
    spans = [span for _, span in ev.motifs]
    lo = max(min(a for a, _ in spans) - flank, 0)
    hi = min(max(b for _, b in spans) + flank, ev.infill.shape[1])
    heldout = ev.heldout if heldout_rows is None else heldout_rows
    fig, (top, bottom) = new_figure(max(8.0, 0.22 * (hi - lo)), 5.0, nrows=2)
    for axis, rows, title in (
        (top, ev.infill, f"infilled samples (n = {ev.infill.shape[0]}), fixed motifs shaded"),
        (bottom, heldout, f"held-out (n = {heldout.shape[0]}), same positions"),
    ):
        freqs = position_frequencies(rows[:, lo:hi].numpy(), num_states)
        draw_logo(axis, freqs, alphabet, lo, spans)
        axis.set_ylim(0, math.log2(num_states))
        axis.set_title(title)
    bottom.set_xlabel("position (0-based)")
    save_figure(fig, directory / "infill_logo.png")
    return "infill_logo.png", "infill logo"


# -- Markdown -----------------------------------------------------------------------------------------


def metric_rows(
    sets: Mapping[str, Mapping[str, Any]], keys: Sequence[tuple[str, str]]
) -> list[list[Any]]:
    """Table rows `[label, value per set...]`; a key `a/b` reads `values[a][b]`, a missing
    value is shown as `-`."""
    rows = []
    for key, label in keys:
        row: list[Any] = [label]
        for values in sets.values():
            value: Any = values
            for part in key.split("/"):
                value = value.get(part) if isinstance(value, Mapping) else None
            row.append(value)
        rows.append(row)
    return rows


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


# -- the report -------------------------------------------------------------------------------------


def write_report(
    path: Path,
    task: Task[Any],
    ev: Evaluation,
    m: dict[str, Any],
    plots: dict[str, tuple[str, str]],
    pre: Any,
    sections: Sequence[str] = (),
) -> None:
    """Write report.md for the metrics `m` of an evaluation (see the module doc); `sections`
    are Markdown lines placed after the infill section (the guidance comparison)."""
    config, unit, tok = ev.config, task.unit, task.token_unit
    lk, spec = m["likelihood"], task.baseline
    b, mk = lk["diffusion_bound"], lk[f"{spec.key}_nll"]
    d = lk[f"bound_minus_{spec.key}"]
    tr, data = m.get("training") or {}, m["data"]
    timings = m.get("timings_s") or {}
    params = f", {tr['num_parameters']:,} parameters" if tr.get("num_parameters") else ""
    counts = (
        f", {data['num_train']:,} training and {data['num_heldout']:,} held-out {unit}"
        if data.get("num_train")
        else ""
    )
    lines = [
        f"# {task.title} recipe report",
        "",
        f"Model: `{m['model']}` ({type(pre.graph).__name__}, {pre.config.net.kind} network"
        f"{params}).",
        f"Data: {data.get('source')}"
        + (f" `{data['path']}`" if data.get("path") else "")
        + f"{counts}{task.data_summary(config)}.",
    ]
    if tr:
        lines.append(
            f"Training: {tr.get('steps')} steps of {config.train.batch_size} {unit}"
            + (" (stopped by the time limit)" if tr.get("stopped_by_time_limit") else "")
            + f" in {tr.get('seconds', 0):.0f} s."
        )
    if timings:
        parts = [f"{k} {v:.0f} s" for k, v in timings.items() if isinstance(v, int | float)]
        lines.append("Wall time: " + ", ".join(parts) + ".")
    per_char = "bits_per_character" in b
    headers = ["model", f"bits / {tok}", *(["bits / character"] if per_char else [])]
    rows = [
        [
            "diffusion: likelihood bound (upper bound on its NLL)",
            pm(b["bits_per_token"], b["stderr"], 4),
        ],
        [f"{spec.label} chain: exact NLL", pm(mk["bits_per_token"], mk["stderr"], 4)],
        [f"difference (bound - {spec.label}), paired", pm(d["mean"], d["stderr"], 4)],
    ]
    if per_char:
        for row, value in zip(rows, (b, mk, {}), strict=True):
            row.append(value.get("bits_per_character"))
    lines += [
        "",
        "## Likelihood on held-out data",
        "",
        f"Bits per {tok} on {lk['heldout']} (± standard error over sequences; uniform = "
        f"{lk['uniform_bits_per_token']:.3f} bits):",
        "",
        table(headers, rows, 4),
        "",
        f"The bound used {b['num_t']} Monte Carlo times per sequence (time-sampling error "
        f"alone: {b['mc_stderr']:.4f}). A bound below the {spec.label} chain's exact NLL means "
        "the diffusion model assigns the held-out data a higher likelihood; above it, the bound "
        "may still be loose rather than the model worse.",
        "",
    ]
    lines += _figure_lines(plots, ["training"])
    sets = m["sets"]
    names = list(sets)
    lines += [
        "## Samples against baselines",
        "",
        f"Every set has {sets[names[0]]['num']} sequences. {task.sets_intro(ev, m)}",
        "",
        table(["metric", *names], task.metric_rows(m), 4),
        "",
    ]
    lines += _figure_lines(
        plots,
        [k for k in plots if k not in ("training", "guidance") and not k.startswith("infill")],
    )
    lines += task.report_lines(ev, m)
    inf = m.get("infill")
    if inf:
        fixed = ", ".join(f"`{x['text']}` at {x['start']}..{x['end'] - 1}" for x in inf["motifs"])
        lines += [
            "## Infill: generating around fixed motifs",
            "",
            f"Fixed: {fixed} (0-based positions). **{inf['num_exact']} of "
            f"{inf['num_samples']} infilled samples keep every motif exactly** (checked in code).",
            "",
            *task.infill_lines(ev, m),
        ]
        lines += _figure_lines(plots, [k for k in plots if k.startswith("infill")])
    lines += sections
    sampling = m.get("sampling")
    if sampling:
        lines += [
            "## Sampling",
            "",
            f"{sampling['sampler']} sampler, {_steps(sampling['steps'])}, "
            f"{sampling['num_samples']} samples in {sampling['seconds']:.0f} s (seed "
            f"{sampling['seed']}).",
            "",
        ]
    write_text(path, "\n".join(lines) + "\n")


def _steps(steps: int | None) -> str:
    """A sampler's step count; the first-hitting sampler has none (one event at a time)."""
    return "one network call per unmasking event" if steps is None else f"{steps} steps"


def _figure_lines(plots: dict[str, tuple[str, str]], keys: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for key in keys:
        if key in plots:
            path, caption = plots[key]
            lines += [f"![{caption}]({path})", ""]
    return lines
