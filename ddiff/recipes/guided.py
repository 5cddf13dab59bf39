"""Labelled runs: the noisy classifier, guided generation and the guidance comparison.

A recipe whose data carry class labels (the DNA recipe with `data.labelled: true`) trains a
label-conditioned network with label dropout, then a noisy classifier of the same graph and
schedule (`OUT/classifier/`). `sample` and `infill` then generate one label with
classifier-free or classifier guidance (`--label NAME --guidance free|classifier
--guidance-weight W`), and `evaluate` compares, for every label and both kinds of guidance,
the weights of `guidance.sweep_weights`: a k-mer judge trained on real data only
(`ddiff.eval.KmerJudge`, never the guidance classifier) says which label each sample looks
like, next to the judge's accuracy on real held-out sequences of that label, and the k-mer
JS divergence says how close the samples are to that label's held-out sequences.

```
OUT/classifier/model.safetensors   the classifier's averaged (EMA) weights
OUT/classifier/config.json         its sizes, label names, graph and held-out accuracy
OUT/classifier/checkpoints/, logs/ its Lightning checkpoints and metrics (as the model's)
```
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ddiff.conditioning import Clamp
from ddiff.io import atomic_path, write_json
from ddiff.recipes import report
from ddiff.recipes.config import GuidanceConfig, RecipeConfig, RecipeError, cpu_training, one_line
from ddiff.recipes.task import DataSplit, Task

CLASSIFIER_DIR = "classifier"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
SWEEP_KS = (3, 6)
"""k-mer lengths of the JS divergence in the guidance comparison."""
NEAR = 0.05
"""How close (absolute) a label rate must come to the judge's accuracy on real sequences."""
JUDGES: dict[str, dict[str, Any]] = {
    "phase-aware": {},  # KmerJudge's default: 1- to 3-mers counted in each of 3 phases
    "phase-free": {"ks": (1, 2, 3, 4), "frames": 1},
}
"""The two k-mer judges (`ddiff.eval.KmerJudge` arguments): the default one also sees the
phase of a k-mer's position modulo 3, which tells in-frame coding windows (the DNA `gene`
label) from others; the phase-free one sees composition only. Both are trained on real
training sequences only."""


# -- the classifier ---------------------------------------------------------------------------


def train_classifier(
    task: Task[Any], config: RecipeConfig, data: DataSplit, out: Path, resume: bool
) -> dict[str, Any] | None:
    """Train the noisy classifier of a labelled run into `out/classifier/`; its record (None
    when the data carry no labels or `guidance.classifier.max_steps` is 0)."""
    from lightning.pytorch.callbacks import TQDMProgressBar

    from ddiff.run import build_trainer, resume_checkpoint
    from ddiff.training import ClassifierModule, TokenDataModule

    cfg = config.guidance.classifier
    if not data.labels or cfg.max_steps == 0:
        return None
    assert data.train_labels is not None and data.heldout_labels is not None
    directory = out / CLASSIFIER_DIR
    graph, schedule = config.graph.build(), config.schedule.build()
    seed = config.train.seed
    if cfg.kind == "markov":
        return _fit_markov(config, graph, schedule, data, directory)
    sizes = _classifier_sizes(cfg, task.sample_length(config))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _build_classifier(graph, len(data.labels), sizes)
    module = ClassifierModule(graph, schedule, net, config.optim.build(), seed=seed)
    every = max(cfg.max_steps // 2, 1)
    train_cfg = cpu_training(cfg.max_steps, every=every).model_copy(
        update={"batch_size": cfg.batch_size}
    )
    progress = config.runtime.progress
    trainer = build_trainer(
        train_cfg,
        directory,
        callbacks=[TQDMProgressBar(refresh_rate=10)] if progress else [],
        enable_model_summary=False,
        num_sanity_val_steps=0,
        enable_progress_bar=progress,
    )
    rows = task.training_sequences(config, data)
    datamodule = TokenDataModule(
        rows,
        data.heldout,
        batch_size=cfg.batch_size,
        val_batch_size=config.train.val_batch_size,
        num_tokens=task.num_tokens,
        seed=seed,
        train_labels=data.train_labels,
        val_labels=data.heldout_labels,
    )
    start = time.perf_counter()
    ckpt = resume_checkpoint(directory) if resume else None
    trainer.fit(module, datamodule=datamodule, ckpt_path=None if ckpt is None else str(ckpt))
    seconds = time.perf_counter() - start
    heldout = data.heldout
    assert isinstance(heldout, Tensor)
    accuracy = module.accuracy_by_noise(
        heldout, data.heldout_labels, generator=torch.Generator().manual_seed(seed)
    )
    record = {
        "labels": list(data.labels),
        "num_states": graph.num_states,
        "sizes": sizes,
        "steps": int(module.global_step),
        "seconds": seconds,
        "heldout_accuracy_by_t": {f"{t:g}": a for t, a in accuracy.items()},
    }
    _save_classifier(directory, module.averaged_net, record)
    return record


def _fit_markov(
    config: RecipeConfig, graph: Any, schedule: Any, data: DataSplit, directory: Path
) -> dict[str, Any]:
    """`guidance.classifier.kind: markov`: the chains of each label counted on the training
    sequences (no reverse complements: a label may depend on the strand), saved like a
    network classifier; refitted from scratch on resume (it is deterministic)."""
    from ddiff.guidance import MarkovClassifier
    from ddiff.training.classifier import ClassifierModule, accuracy_by_noise

    cfg = config.guidance.classifier
    train, held = data.train, data.heldout
    if not isinstance(train, Tensor) or not isinstance(held, Tensor):
        raise RecipeError(
            "guidance.classifier.kind: markov needs sequences of one length (its chains are "
            "indexed by position); use kind: conv"
        )
    assert data.train_labels is not None and data.heldout_labels is not None
    start = time.perf_counter()
    clf = MarkovClassifier.fit(
        graph,
        train,
        data.train_labels,
        num_labels=len(data.labels),
        order=cfg.order,
        period=cfg.period,
    )
    seconds = time.perf_counter() - start
    accuracy = accuracy_by_noise(
        clf,
        graph,
        schedule,
        held,
        data.heldout_labels,
        ClassifierModule.bin_times(),
        torch.Generator().manual_seed(config.train.seed),
    )
    record = {
        "labels": list(data.labels),
        "num_states": graph.num_states,
        "sizes": {"kind": "markov", "order": clf.order, "period": clf.period},
        "steps": 0,
        "seconds": seconds,
        "heldout_accuracy_by_t": {f"{t:g}": a for t, a in accuracy.items()},
    }
    _save_classifier(directory, clf, record)
    return record


def _classifier_sizes(cfg: Any, length: int) -> dict[str, Any]:
    """The classifier's constructor arguments (recorded in its config.json), with its `kind`."""
    sizes: dict[str, Any] = {"kind": cfg.kind, "dim": cfg.dim, "depth": cfg.depth}
    sizes["cond_dim"] = cfg.cond_dim
    if cfg.kind == "conv":
        return {**sizes, "max_length": length}
    return {**sizes, "heads": cfg.heads, "max_length": length if cfg.positions else None}


def _build_classifier(graph: Any, num_labels: int, sizes: dict[str, Any]) -> Any:
    """An untrained classifier of the recorded `sizes`, to load saved weights into."""
    from ddiff.guidance import MarkovClassifier
    from ddiff.nets import ConvClassifierNet, NoisyClassifierNet

    num_states = graph.num_states
    kind, rest = sizes.get("kind", "transformer"), {k: v for k, v in sizes.items() if k != "kind"}
    if kind == "markov":  # uniform chains, replaced by the saved tables
        s, k, p = graph.num_tokens, int(rest["order"]), int(rest["period"])
        return MarkovClassifier(
            graph,
            torch.full((num_labels,), -math.log(num_labels), dtype=torch.float64),
            torch.full((num_labels, s**k), -k * math.log(s), dtype=torch.float64),
            torch.full((num_labels, p, s**k, s), -math.log(s), dtype=torch.float64),
        )
    cls = ConvClassifierNet if kind == "conv" else NoisyClassifierNet
    return cls(num_states, num_labels, **rest)


def _save_classifier(directory: Path, net: torch.nn.Module, record: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    write_json(directory / CONFIG_FILE, record)


def load_classifier(run_dir: Path | None, labels: tuple[str, ...], graph: Any) -> Any:
    """The noisy classifier saved in `run_dir/classifier/`, checked against the model's labels
    and graph.

    Raises:
        RecipeError: if there is none, or it was trained for other labels or another graph.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    num_states = graph.num_states
    directory = None if run_dir is None else run_dir / CLASSIFIER_DIR
    if directory is None or not (directory / WEIGHTS_FILE).is_file():
        raise RecipeError(
            f"--guidance classifier needs the noisy classifier that train fits on labelled data "
            f"({CLASSIFIER_DIR}/{WEIGHTS_FILE} in the run directory), and "
            f"{run_dir or 'this model'} has none; use --guidance free, or train the run with "
            "guidance.classifier.max_steps > 0"
        )
    try:
        record = json.loads((directory / CONFIG_FILE).read_text())
        if record["labels"] != list(labels) or record["num_states"] != num_states:
            raise RecipeError(
                f"{directory}: the classifier was trained for labels {record['labels']} and "
                f"{record['num_states']} states, but the model has {list(labels)} and "
                f"{num_states}"
            )
        net = _build_classifier(graph, len(labels), record["sizes"])
        net.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as err:
        raise RecipeError(f"{directory}: not a readable classifier ({one_line(str(err))})") from err
    return net.eval()


# -- guided generation ------------------------------------------------------------------------


def score_function(
    pre: Any,
    guidance: GuidanceConfig,
    run_dir: Path | None,
    *,
    label: str | None = None,
    classifier: Any = None,
) -> tuple[Any, dict[str, Any] | None]:
    """The score function that `sample` and `infill` hand to the sampler, and what it was.

    Without a label the model itself (a labelled network then uses its null label: the
    unconditional model). With one: classifier-free guidance
    (`ddiff.guidance.ClassifierFreeGuidance`) or classifier guidance
    (`ddiff.guidance.ClassifierGuidance` with the run's classifier, read from `run_dir`
    unless `classifier` is given) at `guidance.weight`.

    Raises:
        RecipeError: for a model trained without labels, an unknown label name, or classifier
            guidance without a classifier.
    """
    from ddiff.guidance import ClassifierFreeGuidance, ClassifierGuidance, select_label

    name = guidance.label if label is None else label
    if name is None:
        return pre.net, None
    try:
        c = pre.label_index(name)
    except ValueError as err:
        raise RecipeError(f"--label {name}: {one_line(str(err))}") from err
    net, w = pre.net, guidance.weight
    record = {"label": name, "kind": guidance.kind, "weight": w}
    if guidance.kind == "free":
        fn: Any = ClassifierFreeGuidance(
            net.bind_label(c), net.bind_label(None), w, graph=pre.graph
        )
    else:
        clf = classifier or load_classifier(run_dir, pre.labels, pre.graph)
        fn = ClassifierGuidance(
            net.bind_label(None), select_label(clf, c), w, graph=pre.graph, mode=guidance.mode
        )
        record["mode"] = guidance.mode
    return fn, record


def draw(
    config: RecipeConfig,
    pre: Any,
    score_fn: Any,
    num: int,
    length: int,
    seed: int,
    condition: Clamp | None = None,
    what: str = "sample",
) -> tuple[Tensor, int, float]:
    """`num` rows from the configured sampler with `score_fn`, in batches of
    `generate.batch_size`: `(rows [num, length], network calls per batch, seconds)`."""
    sampling, batch_size = config.sampling, config.generate.batch_size
    sampler = sampling.build(pre.graph, pre.schedule)
    generator = torch.Generator().manual_seed(seed)
    progress = config.runtime.progress
    rows, nfe = [], 0
    start = time.perf_counter()
    chunks = range(0, num, batch_size)
    for k, first in enumerate(chunks):
        if progress and len(chunks) > 1:
            print(f"{what}: batch {k + 1}/{len(chunks)}", flush=True)
        result = sampler.run(
            score_fn,
            min(batch_size, num - first),
            length,
            sampling.steps,
            condition=condition,
            generator=generator,
            progress=progress,
        )
        rows.append(result.tokens)
        nfe += result.nfe
    return torch.cat(rows), nfe // max(len(chunks), 1), time.perf_counter() - start


# -- the comparison in evaluate ---------------------------------------------------------------


def compare(
    task: Task[Any], config: RecipeConfig, pre: Any, data: DataSplit, run_dir: Path | None
) -> dict[str, Any] | None:
    """Every label x kind x weight of `guidance.sweep_weights`, judged (see the module doc);
    None for a model or data without labels."""
    from ddiff.eval.judge import KmerJudge

    labels = tuple(pre.labels)
    if not labels or not data.labels:
        return None
    if labels != tuple(data.labels):
        raise RecipeError(
            f"the model was trained on labels {list(labels)}, the data carry {list(data.labels)}"
        )
    train, held = data.train, data.heldout
    assert isinstance(train, Tensor) and isinstance(held, Tensor)
    assert data.train_labels is not None and data.heldout_labels is not None
    g, seed = config.guidance, config.evaluate.seed
    kinds, classifier = ["free"], None
    try:
        classifier = load_classifier(run_dir, labels, pre.graph)
        kinds.append("classifier")
    except RecipeError as err:
        print(f"evaluate: no classifier guidance ({err})", flush=True)
    held_of = {c: held[data.heldout_labels == c] for c in range(len(labels))}
    judges: dict[str, Any] = {}
    judged: dict[str, dict[str, Any]] = {}
    for key, options in JUDGES.items():
        start = time.perf_counter()
        judge = KmerJudge(num_tokens=task.num_tokens, **options)
        judges[key] = judge.fit(train, data.train_labels, len(labels))
        judged[key] = {
            "what": (
                f"k = {', '.join(map(str, judge.ks))}"
                + (f" in each of {judge.frames} phases" if judge.frames > 1 else "")
                + f", L2 penalty {judge.l2_:g} chosen on a split of the training sequences"
            ),
            "train_seconds": time.perf_counter() - start,
            "accuracy_on_heldout": {labels[c]: judge.label_rates(held_of[c], c) for c in held_of},
        }
    length = int(held.shape[1])
    num = g.sweep_samples
    print(
        f"evaluate: guidance, {len(labels)} labels x {kinds} x weights {list(g.sweep_weights)}, "
        f"{num} samples each",
        flush=True,
    )
    unguided, _, seconds0 = draw(config, pre, pre.net, num, length, seed, what="unguided")
    rows: list[dict[str, Any]] = []
    for c, name in enumerate(labels):
        for kind in kinds:
            for w in g.sweep_weights:
                if w == 0:  # weight 0 is the unconditional model for both kinds: one set
                    tokens, seconds = unguided, seconds0
                else:
                    chosen = g.model_copy(update={"kind": kind, "weight": float(w)})
                    fn, _ = score_function(pre, chosen, run_dir, label=name, classifier=classifier)
                    tokens, _, seconds = draw(
                        config, pre, fn, num, length, seed + 1 + c, what=f"{name} {kind} w={w:g}"
                    )
                rows.append(
                    {
                        "label": name,
                        "kind": kind,
                        "weight": float(w),
                        **{
                            f"label_rate_{key}": judge.label_rates(tokens, c)
                            for key, judge in judges.items()
                        },
                        **{f"js_k{k}": task.kmer_js(tokens, held_of[c], k) for k in SWEEP_KS},
                        "seconds": seconds,
                    }
                )
    return {
        "judges": judged,
        "num_heldout": {labels[c]: int(held_of[c].shape[0]) for c in held_of},
        "num_samples": num,
        "sampler": {"kind": config.sampling.kind, "steps": config.sampling.steps},
        "classifier_mode": g.mode if "classifier" in kinds else None,
        "classifier": None if classifier is None else _describe(classifier),
        "rows": rows,
        "verdict": {
            key: _verdict(rows, key, j["accuracy_on_heldout"]) for key, j in judged.items()
        },
    }


def _describe(classifier: Any) -> str:
    """What the guidance classifier is, for the report."""
    from ddiff.guidance import MarkovClassifier

    if isinstance(classifier, MarkovClassifier):
        return (
            f"the noisy posterior of Markov chains of order {classifier.order} and period "
            f"{classifier.period}, one per label"
        )
    return f"a trained {type(classifier).__name__}"


def _verdict(
    rows: list[dict[str, Any]], judge: str, real: dict[str, float]
) -> list[dict[str, Any]]:
    """Per label and kind: the weights <= 2 whose label rate is within `NEAR` of the judge's
    accuracy on real held-out sequences of that label and whose k-mer JS to them is below the
    unconditional samples'."""
    out = []
    for name, kind in dict.fromkeys((r["label"], r["kind"]) for r in rows):
        mine = [r for r in rows if r["label"] == name and r["kind"] == kind]
        base = next((r for r in mine if r["weight"] == 0), None)
        passing = [
            r["weight"]
            for r in mine
            if 0 < r["weight"] <= 2
            and abs(r[f"label_rate_{judge}"] - real[name]) <= NEAR
            and (base is None or all(r[f"js_k{k}"] < base[f"js_k{k}"] for k in SWEEP_KS))
        ]
        out.append({"label": name, "kind": kind, "weights_meeting_both": passing})
    return out


def figure(result: dict[str, Any], path: Path) -> tuple[str, str]:
    """Label rate against k-mer JS over the weights, one line per label and kind; one panel
    per judge."""
    judges = result["judges"]
    fig, axes = report.new_figure(width=11.0, height=4.2, ncols=len(judges))
    k = SWEEP_KS[-1]
    for ax, (key, judge) in zip(axes, judges.items(), strict=True):
        real = judge["accuracy_on_heldout"]
        for i, name in enumerate(real):
            colour = f"C{i}"
            ax.axhline(real[name], color=colour, lw=0.8, ls=":")
            for kind, marker, style in (("free", "o", "-"), ("classifier", "s", "--")):
                mine = [r for r in result["rows"] if r["label"] == name and r["kind"] == kind]
                if not mine:
                    continue
                xs, ys = [r[f"js_k{k}"] for r in mine], [r[f"label_rate_{key}"] for r in mine]
                ax.plot(xs, ys, marker=marker, ls=style, color=colour, label=f"{name}, {kind}")
                for r, x, y in zip(mine, xs, ys, strict=True):
                    ax.annotate(
                        f"{r['weight']:g}", (x, y), fontsize=7, xytext=(3, 3),
                        textcoords="offset points",
                    )  # fmt: skip
        ax.set_title(f"{key} judge", fontsize=9)
        ax.set_xlabel(f"{k}-mer JS to the label's held-out sequences (bits)")
        ax.set_ylabel("fraction the judge assigns to the label")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    report.save_figure(fig, path)
    return path.name, (
        "guided samples: the judges' label rate against k-mer JS, points labelled with the "
        "guidance weight (dotted: each judge's accuracy on real held-out sequences of a label)"
    )


def report_lines(result: dict[str, Any], plots: dict[str, tuple[str, str]]) -> list[str]:
    """The report's guidance section."""
    judges, ks = result["judges"], SWEEP_KS
    rows = [
        [
            r["label"],
            r["kind"],
            f"{r['weight']:g}",
            *[
                f"{r[f'label_rate_{key}']:.3f} ({j['accuracy_on_heldout'][r['label']]:.3f})"
                for key, j in judges.items()
            ],
            *[f"{r[f'js_k{k}']:.4f}" for k in ks],
        ]
        for r in result["rows"]
    ]
    verdicts = [
        f"- {key} judge, {v['label']}, {v['kind']}: "
        + (
            "meets both at weight " + ", ".join(f"{w:g}" for w in v["weights_meeting_both"])
            if v["weights_meeting_both"]
            else "no weight <= 2 meets both"
        )
        for key, verdict in result["verdict"].items()
        for v in verdict
    ]
    held = ", ".join(f"{n} {k}" for k, n in result["num_heldout"].items())
    what = "; ".join(f"{key}: {j['what']}" for key, j in judges.items())
    mode = result["classifier_mode"]
    steps = result["sampler"]["steps"]
    sampler = result["sampler"]["kind"] + ("" if steps is None else f", {steps} steps")
    used = f" ({result['classifier']})" if result.get("classifier") else ""
    lines = [
        "## Guidance: generating one label",
        "",
        f"{result['num_samples']} samples per label, kind and weight "
        f"({sampler}; weight 0 is the "
        "unconditional model, one set shared by every row at weight 0). Two independent judges, "
        "k-mer logistic regressions trained on the real training sequences only (never the "
        f"guidance classifier), say which label a sample looks like ({what}). Each cell gives "
        "the fraction of samples a judge assigns to the requested label and, in brackets, its "
        f"accuracy on real held-out sequences of that label ({held}): the level a perfect "
        "generator of the label reaches. JS: the samples' k-mer divergence to that label's "
        "held-out sequences (bits; lower is closer)."
        + (f" Classifier guidance used the {mode} estimate{used}." if mode else ""),
        "",
        report.table(
            [
                "label",
                "guidance",
                "weight",
                *[f"{key} judge: label rate (real)" for key in judges],
                *[f"JS k = {k}" for k in ks],
            ],
            rows,
        ),
        "",
        f"Criterion (issue 12): at some weight <= 2 the label rate is within {NEAR:.2f} of the "
        "judge's accuracy on real held-out sequences and every JS is below the unconditional "
        "samples'.",
        "",
        *verdicts,
        "",
    ]
    if "guidance" in plots:
        name, caption = plots["guidance"]
        lines += [f"![{caption}]({name})", ""]
    return lines
