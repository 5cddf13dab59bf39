"""The stages every recipe runs, written once: train, sample, infill, evaluate (and report).

A `Run` holds what the stages share (the task, the resolved configuration, the output
directory, a `--checkpoint` and the cached data); each stage is a function of it. The evaluate
driver scores the held-out data with the diffusion bound and the task's Markov baseline (exact
NLL, paired difference per sequence), compares the samples with the baselines on the task's
metrics, checks the infilled samples, and writes metrics.json, the figures and report.md.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ddiff.conditioning import Clamp, Condition, Motif
from ddiff.eval import bits_per_token
from ddiff.eval.baselines import MarkovChain
from ddiff.eval.statistics import paired_difference, subsample
from ddiff.io import atomic_path
from ddiff.recipes import guided, report
from ddiff.recipes.config import RecipeConfig, RecipeError, one_line
from ddiff.recipes.rundir import CheckpointInfo, RunDir, locate_checkpoint, read_json, write_json
from ddiff.recipes.task import DataSplit, Evaluation, Role, Sequences, Task, count, select

STAGES = ("train", "sample", "infill", "evaluate")


@dataclass
class Run:
    """What the stages of one command share.

    Attributes:
        task: the domain.
        config: the resolved configuration.
        out: the output directory.
        checkpoint: the `--checkpoint` model (None: the model in `out`).
        resume: continue training the run in `out`.
        command: the command line's command (`all` or one stage).
    """

    task: Task[Any]
    config: RecipeConfig
    out: RunDir
    checkpoint: CheckpointInfo | None = None
    resume: bool = False
    command: str = "all"
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    _data: dict[str, DataSplit] = field(default_factory=dict)

    @property
    def model_dir(self) -> RunDir:
        """The run directory that holds the model (the checkpoint's, or OUT)."""
        if self.checkpoint is not None and self.checkpoint.run_dir is not None:
            return RunDir(self.checkpoint.run_dir, self.out.sample_suffix)
        return self.out

    def data(self, config: RecipeConfig | None = None) -> DataSplit:
        """The task's data split for `config` (default: the run's), read once."""
        config = config or self.config
        key = config.data.model_dump_json()  # type: ignore[attr-defined]
        if key not in self._data:
            split = self.task.load_data(config)
            split.provenance.update(num_train=count(split.train), num_heldout=count(split.heldout))
            self._data[key] = split
        return self._data[key]

    def condition(self) -> Clamp:
        """The clamp of the infill motifs, checked against the sample length and alphabet."""
        motifs = self.task.motifs(self.config)
        try:
            return Condition(tuple(motifs)).resolve(
                self.task.sample_length(self.config), self.task.num_tokens
            )
        except ValueError as err:
            raise RecipeError(f"{one_line(str(err))} (motif positions are 0-based)") from err

    def model(self) -> Any:
        """The trained model (`--checkpoint`, else OUT), refused unless it is this domain's.

        Returns:
            A `ddiff.pretrained.Pretrained` (from `ddiff.interop.load_sedd` for a checkpoint
            of the SEDD reference code).
        """
        from ddiff.interop import is_sedd_checkpoint, load_sedd
        from ddiff.pretrained import load_pretrained

        option = "--checkpoint" if self.checkpoint is not None else "--out"
        info = self.checkpoint or locate_checkpoint(self.out.root, "--out")
        name = self.task.name
        if info.recipe is not None and info.recipe.get("recipe") != name:
            other = info.recipe.get("recipe")
            raise RecipeError(
                f"{option} {info.run_dir}: this run was trained by the {other!r} recipe, not "
                f"{name!r}; use python -m ddiff.recipes.{other} for it"
            )
        try:
            if is_sedd_checkpoint(info.pretrained):
                pre = load_sedd(info.pretrained)
            else:
                pre = load_pretrained(info.pretrained)
        except (ValueError, FileNotFoundError) as err:
            raise RecipeError(f"{option} {info.pretrained}: {one_line(str(err))}") from err
        if pre.graph.num_tokens != self.task.num_tokens:
            raise RecipeError(
                f"{option} {info.pretrained}: the model has {pre.graph.num_tokens} data tokens "
                f"but the {name} recipe needs {self.task.num_tokens}; it was trained for "
                "another domain"
            )
        return pre

    def score_function(self, pre: Any) -> tuple[Any, dict[str, Any] | None]:
        """What `sample` and `infill` draw with: the model, or the guided label of `--label`
        (checked: a labelled model that knows the label, a classifier for `classifier`)."""
        run_dir = self.checkpoint.run_dir if self.checkpoint is not None else self.out.root
        return guided.score_function(pre, self.config.guidance, run_dir)

    def check_label(self) -> None:
        """Before training: the `--label` of a later stage must be one of the data's labels."""
        name, labels = self.config.guidance.label, self.data().labels
        if name is not None and name not in labels:
            known = f"the data's labels are {list(labels)}" if labels else "the data carry none"
            raise RecipeError(f"--label {name}: not a label of the training data ({known})")

    def check_trainable(self) -> None:
        """At least one batch of training sequences."""
        num, batch = count(self.data().train), self.config.train.batch_size
        if num < batch:
            raise RecipeError(
                f"the data has {num} training sequences, fewer than one batch of "
                f"train.batch_size = {batch}; give more data or lower it with "
                "--set train.batch_size=N"
            )


# -- train ------------------------------------------------------------------------------------------


def train(run: Run) -> None:
    """Train the task's model into OUT (or continue it with `--resume`)."""
    from lightning.pytorch.callbacks import TQDMProgressBar

    from ddiff.run import train as train_run

    task, config, out = run.task, run.config, run.out
    out.check_fresh_for_training(run.resume)
    earlier: dict[str, Any] = {}  # the finished sessions of a resumed run
    if run.resume and out.recipe.is_file():
        previous = read_json(out.recipe)
        if isinstance(previous, dict) and previous.get("recipe") != task.name:
            raise RecipeError(
                f"--resume: {out.root} holds a run of the {previous.get('recipe')!r} recipe, "
                f"not {task.name!r}"
            )
        if isinstance(previous, dict) and isinstance(previous.get("training"), dict):
            earlier = previous["training"]
    data = run.data()
    run.check_trainable()
    record: dict[str, Any] = {
        "recipe": task.name,
        "config": config.model_dump(mode="json"),
        "data": data.provenance,
        "training": earlier or None,
    }
    out.root.mkdir(parents=True, exist_ok=True)
    write_json(out.recipe, record)
    _quiet_lightning()
    options: dict[str, Any] = {
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "enable_progress_bar": config.runtime.progress,
    }
    if config.runtime.train_time_limit_s is not None:
        options["max_time"] = {"seconds": config.runtime.train_time_limit_s}
    start = time.perf_counter()
    try:
        module = train_run(
            config.run_config(),
            out.root,
            resume=run.resume,
            datamodule=datamodule(task, config, data),
            callbacks=[TQDMProgressBar(refresh_rate=10)] if config.runtime.progress else [],
            **options,
        )
    except ValueError as err:  # e.g. resuming a checkpoint of another graph
        raise RecipeError(f"training in {out.root}: {one_line(str(err))}") from err
    steps, seconds = int(module.global_step), time.perf_counter() - start
    record["training"] = {
        "steps": steps,
        "max_steps": config.train.max_steps,
        "stopped_by_time_limit": steps < config.train.max_steps,
        # Every finished session's seconds (a session killed before it finished records none).
        "seconds": float(earlier.get("seconds") or 0.0) + seconds,
        "sessions": (int(earlier.get("sessions") or 1) + 1) if earlier else 1,
        "num_parameters": sum(p.numel() for p in module.net.parameters()),
    }
    write_json(out.recipe, record)
    run.timings["train"] = seconds
    if data.labels:
        print(f"train: the noisy classifier of {list(data.labels)} (classifier guidance)")
        classifier = guided.train_classifier(task, config, data, out.root, run.resume)
        if classifier is not None:
            record["classifier"] = classifier
            write_json(out.recipe, record)
            run.timings["train_classifier"] = classifier["seconds"]


def datamodule(task: Task[Any], config: RecipeConfig, data: DataSplit) -> Any:
    """The `ddiff.training.TokenDataModule` the task's model trains on."""
    from ddiff.training import TokenDataModule

    length, pad_token = task.padding(config) or (None, 0)
    return TokenDataModule(
        task.training_sequences(config, data),
        data.heldout,
        batch_size=config.train.batch_size,
        val_batch_size=config.train.val_batch_size,
        length=length,
        pad_token=pad_token,
        num_tokens=task.num_tokens,
        seed=config.train.seed,
        num_workers=config.train.num_workers,
        train_labels=data.train_labels,
        val_labels=data.heldout_labels,
    )


def _quiet_lightning() -> None:
    """Keep Lightning's console output to the progress bar and real warnings."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (
        ".*does not have many workers.*",
        ".*Checkpoint directory .* exists and is not empty.*",
        ".*LightningModule.*has parameters that were not used.*",
        ".*GPU available but not used.*",
        ".*`IterableDataset` has `__len__` defined.*",
        ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


# -- sample and infill ------------------------------------------------------------------------------


def sample(run: Run) -> None:
    """Draw `generate.num_samples` unconditional samples."""
    _generate(run, "sample", condition=None, seed=run.config.generate.seed)


def infill(run: Run) -> None:
    """Draw samples with the infill motifs fixed, and check that every one keeps them."""
    clamp = run.condition()
    record = _generate(run, "infill", condition=clamp, seed=run.config.generate.seed + 1)
    if not record["all_exact"]:  # a library bug, not a user error: fail loudly
        raise RuntimeError(
            f"only {record['num_exact']} of {record['num_samples']} infilled samples keep the "
            "fixed motifs; the samplers' clamping is broken"
        )


def kept_motifs(rows: Tensor, clamp: Clamp) -> Tensor:
    """`[N]` bool: which rows hold every fixed token of `clamp`."""
    return (rows[:, clamp.mask] == clamp.tokens[clamp.mask]).all(dim=1)


def _generate(run: Run, stage: str, condition: Clamp | None, seed: int) -> dict[str, Any]:
    task, config, out = run.task, run.config, run.out
    pre = run.model()
    score_fn, guidance = run.score_function(pre)
    gen = config.generate
    length = task.sample_length(config)
    tokens, nfe, seconds = guided.draw(
        config, pre, score_fn, gen.num_samples, length, seed, condition, what=stage
    )
    record: dict[str, Any] = {
        "sampler": config.sampling.kind,
        "steps": config.sampling.steps,
        "num_samples": gen.num_samples,
        "length": length,
        "seed": seed,
        "nfe_per_batch": nfe,
        "seconds": seconds,
        **({"guidance": guidance} if guidance else {}),
    }
    if condition is not None:
        kept = kept_motifs(tokens, condition)
        record["motifs"] = [
            {
                "text": task.decode(m.tokens),
                "position": m.position,
                "source": m.name,
                "tokens": list(m.tokens),
            }
            for m in task.motifs(config)
        ]
        record["num_exact"] = int(kept.sum())
        record["all_exact"] = bool(kept.all())
    with atomic_path(out.samples(stage)) as tmp:
        task.write_samples(tmp, tokens, stage)
    out.write_tokens(stage, tokens)
    write_json(out.record(stage), record)
    run.timings[stage] = record["seconds"]
    return record


# -- evaluate ---------------------------------------------------------------------------------------


def evaluate(run: Run) -> None:
    """Score held-out data, compare samples with baselines, check infill, write the report."""
    task, config, out = run.task, run.config, run.out
    pre = run.model()
    train_seqs, pool, model_record, foreign, provenance = _evaluation_data(run)
    ev_cfg = config.evaluate
    heldout = select(pool, subsample(count(pool), ev_cfg.max_heldout, ev_cfg.seed))
    num_held = count(heldout)
    where = (
        f"{num_held} {task.unit} of {config.data_path}"
        if foreign
        else f"{num_held} held-out {task.unit}"
    )
    print(f"evaluate: likelihood bound on {num_held} held-out {task.unit}", flush=True)
    bound, chain, likelihood = _likelihood(run, pre, train_seqs, heldout, where)

    samples = out.read_tokens("sample")
    infilled = out.read_tokens("infill") if out.record("infill").is_file() else None
    num = int(samples.shape[0]) if samples is not None else config.generate.num_samples
    baseline_rows, compared = _compared_sets(run, train_seqs, heldout, samples, chain, num)
    print("evaluate: sample metrics and baselines", flush=True)
    set_metrics = {
        name: task.set_metrics(seqs, heldout, reference, role)
        for name, (seqs, role, reference) in compared.items()
    }
    spec = task.baseline
    checks = {
        name: task.row_checks(rows)
        for name, rows in (("diffusion samples", samples), (f"{spec.label} samples", baseline_rows))
        if rows is not None
    }
    length = task.sample_length(config)
    ev = Evaluation(
        config=config,
        train=train_seqs,
        heldout=heldout,
        samples=samples,
        infill=infilled,
        baseline_rows=baseline_rows,
        sets={name: seqs for name, (seqs, _, _) in compared.items()},
        metrics=set_metrics,
        motifs=[
            (m, (m.position % length, m.position % length + len(m.tokens)))
            for m in _infill_motifs(run)
        ],
        baseline_bits=likelihood[f"{spec.key}_nll"]["bits_per_token"],
        bound=bound,
    )
    task.likelihood_extras(ev, likelihood)
    infill_metrics = _infill_metrics(run, ev)

    figures = {"training": (_training_figure(run, ev), "training curves")}
    figures.update(task.figures(ev, out.figures))
    guidance = None
    if pre.labels and not foreign:
        run_dir = run.checkpoint.run_dir if run.checkpoint is not None else out.root
        guidance = guided.compare(task, config, pre, run.data(), run_dir)
    if guidance is not None:
        figures["guidance"] = guided.figure(guidance, out.figures / "guidance.png")
    plots = {
        key: (f"{RunDir.figure_name}/{name}", caption)
        for key, (name, caption) in figures.items()
        if name
    }
    for values in set_metrics.values():  # figure-only values stay out of metrics.json
        for key in [k for k in values if k.startswith("_")]:
            del values[key]
    metrics: dict[str, Any] = {
        "recipe": task.name,
        "model": str(run.checkpoint.pretrained if run.checkpoint else out.pretrained),
        "training": model_record.get("training"),
        "data": provenance,
        "likelihood": likelihood,
        "sets": set_metrics,
        **({"padding": checks} if any(v is not None for v in checks.values()) else {}),
        "infill": infill_metrics,
        "sampling": out.read_record("sample"),
        **({"guidance": guidance} if guidance is not None else {}),
        "timings_s": _timings(run, model_record),
    }
    write_json(out.metrics, metrics)
    sections = guided.report_lines(guidance, plots) if guidance is not None else []
    report.write_report(out.report, task, ev, metrics, plots, pre, sections)
    print(f"evaluate: wrote {out.metrics} and {out.report}", flush=True)


def _likelihood(
    run: Run, pre: Any, train: Sequences, heldout: Sequences, where: str
) -> tuple[Any, MarkovChain, dict[str, Any]]:
    """The diffusion bound on `heldout`, the task's Markov chain fitted on `train`, and the
    likelihood section of metrics.json: both in bits per real token with standard errors over
    sequences, and their paired difference."""
    task, config, ev_cfg = run.task, run.config, run.config.evaluate
    rows, lengths = task.as_rows(config, heldout)
    bound = bits_per_token(
        (pre.net, pre.graph, pre.schedule),
        rows,
        num_t=ev_cfg.num_t,
        seed=ev_cfg.seed,
        batch_size=ev_cfg.batch_size,
        lengths=lengths,
    )
    spec = task.baseline
    chain = MarkovChain(task.num_tokens, spec.order, alpha=spec.alpha)
    chain.fit([r.numpy() for r in task.as_rows(config, train)[0]])
    if lengths is None:  # every sequence is a full row
        chain_bits = chain.nll_bits([r.numpy() for r in rows]) / rows.shape[1]
        chain_mean = float(chain_bits.mean())
    else:  # per real token, the padding's cost included
        chain_bits = chain.nll_bits([r.numpy() for r in rows]) / lengths.numpy()
        chain_mean = float(np.sum(chain_bits * lengths.numpy()) / lengths.sum().item())
    diff, diff_se = paired_difference(bound.per_sequence, chain_bits)
    print(
        f"bits/{task.token_unit}: {bound.bits_per_token:.4f} ± {bound.stderr:.4f} (diffusion "
        f"bound, {where}); {spec.label}: {chain_mean:.4f}",
        flush=True,
    )
    likelihood: dict[str, Any] = {
        "diffusion_bound": bound.as_dict(),
        f"{spec.key}_nll": {
            "bits_per_token": chain_mean,
            "stderr": float(chain_bits.std(ddof=1) / math.sqrt(chain_bits.size)),
        },
        f"bound_minus_{spec.key}": {"mean": diff, "stderr": diff_se},
        "uniform_bits_per_token": task.uniform_bits,
        "heldout": where,
    }
    return bound, chain, likelihood


def _compared_sets(
    run: Run,
    train: Sequences,
    heldout: Sequences,
    samples: Tensor | None,
    chain: MarkovChain,
    num: int,
) -> tuple[Tensor, dict[str, tuple[Sequences, Role, Any]]]:
    """The baseline chain's rows, and every compared set by report name: `(sequences, role,
    what copies are checked against)`. The seeded draws keep one order (the baseline's samples,
    then the shuffles), so a seed gives the same sets in every domain."""
    task, config, seed = run.task, run.config, run.config.evaluate.seed
    rng = np.random.default_rng(seed)
    real_rows = subsample(count(train), num, seed + 1)
    rest = np.setdiff1d(np.arange(count(train)), real_rows)
    baseline_rows = torch.from_numpy(chain.sample(num, task.sample_length(config), rng))
    to_shuffle = select(heldout, subsample(count(heldout), num, seed + 2))
    shuffled = [seq[torch.from_numpy(rng.permutation(seq.numel()))] for seq in to_shuffle]
    reference = task.metric_reference(train)
    compared: dict[str, tuple[Sequences, Role, Any]] = {}
    if samples is not None:
        compared["diffusion samples"] = (task.from_rows(samples), "samples", reference)
    compared[f"real (training {task.unit})"] = (
        select(train, real_rows),
        "real",
        task.metric_reference(select(train, rest)),  # a real sequence is no copy of itself
    )
    compared[f"{task.baseline.label} samples"] = (
        task.from_rows(baseline_rows),
        "baseline",
        reference,
    )
    compared["shuffled held-out"] = (
        shuffled if isinstance(to_shuffle, list) else torch.stack(shuffled),
        "shuffled",
        reference,
    )
    own = task.reference_set(heldout, num, seed + 3)
    if own is not None:
        compared["held-out (reference)"] = (own, "reference", reference)
    return baseline_rows, compared


def _evaluation_data(run: Run) -> tuple[Sequences, Sequences, dict[str, Any], bool, dict[str, Any]]:
    """`(train, held-out pool, the model's recipe.json, foreign, provenance)`.

    The held-out pool is the held-out split of the training data, or, when `--data` names a
    file the model was not trained on (`foreign`), all of that file; the baseline is then
    fitted on the model's own training data.
    """
    data = run.data()
    record = run.checkpoint.recipe if run.checkpoint is not None else None
    if record is None and run.model_dir.recipe.is_file():
        record = read_json(run.model_dir.recipe)
    record = record if isinstance(record, dict) else {}
    trained_on = record.get("data") or {}
    path = run.config.data_path
    foreign = path is not None and trained_on.get("sha256") != data.provenance.get("sha256")
    if not foreign:
        return data.train, data.heldout, record, False, data.provenance
    pool: Sequences = (
        [*data.train, *data.heldout]
        if isinstance(data.train, list)
        else torch.cat([data.train, data.heldout])  # type: ignore[list-item]
    )
    train_seqs = data.train
    recorded = record.get("config", {}).get("data") if record.get("config") else None
    if recorded is not None:  # the model's own training data, for the baselines
        model_config = run.config.with_overrides({"data": recorded}, RunDir.recipe_file)
        train_seqs = run.data(model_config).train
    return train_seqs, pool, record, True, trained_on or data.provenance


def _infill_motifs(run: Run) -> list[Motif]:
    """The motifs the infilled samples in OUT were drawn with (infill.json), which need not be
    the configuration's (`infill --motif` on a trained run); the configuration's without one."""
    record = run.out.read_record("infill")
    recorded = record.get("motifs") if isinstance(record, dict) else None
    if not recorded or not all("tokens" in m for m in recorded):
        return run.task.motifs(run.config)
    return [Motif(tuple(m["tokens"]), int(m["position"]), name=m.get("source")) for m in recorded]


def _infill_metrics(run: Run, ev: Evaluation) -> dict[str, Any] | None:
    """The infill check (every motif kept) and the task's metrics of the infilled samples."""
    if ev.infill is None:
        return None
    motifs = Condition(tuple(m for m, _ in ev.motifs))
    kept = kept_motifs(ev.infill, motifs.resolve(ev.infill.shape[1], run.task.num_tokens))
    if not bool(kept.all()):  # a library bug, not a user error
        raise RuntimeError(
            f"{run.out.tokens('infill')}: {int((~kept).sum())} infilled samples lost their motifs"
        )
    return {
        "motifs": [
            {"text": run.task.decode(m.tokens), "start": a, "end": b, "source": m.name}
            for m, (a, b) in ev.motifs
        ],
        "num_samples": int(ev.infill.shape[0]),
        "num_exact": int(kept.sum()),
        "all_exact": True,
        **run.task.infill_metrics(ev),
    }


def _training_figure(run: Run, ev: Evaluation) -> str:
    """The training curves with the baseline's held-out NLL; the file name ("" for no logs)."""
    name = "training.png"
    made = report.plot_training_curves(
        run.model_dir.training_logs(),
        run.out.figures / name,
        run.task.token_unit,
        {f"{run.task.baseline.label} NLL (held-out)": ev.baseline_bits},
    )
    return name if made else ""


def _timings(run: Run, record: dict[str, Any]) -> dict[str, Any]:
    """Seconds per stage: this command's, else those recorded by earlier commands."""
    timings: dict[str, Any] = dict(run.timings)
    if "train" not in timings and record.get("training"):
        timings["train"] = record["training"].get("seconds")
    for stage in ("sample", "infill"):
        if stage not in timings:
            previous = run.out.read_record(stage)
            if previous is not None:
                timings[stage] = previous.get("seconds")
    if run.command == "all":
        timings["all_stages"] = time.perf_counter() - run.started
    return timings


def stage(name: str) -> Any:
    """The stage function called `name`."""
    return {"train": train, "sample": sample, "infill": infill, "evaluate": evaluate}[name]


__all__ = [
    "STAGES",
    "Run",
    "datamodule",
    "evaluate",
    "infill",
    "kept_motifs",
    "sample",
    "stage",
    "train",
]
