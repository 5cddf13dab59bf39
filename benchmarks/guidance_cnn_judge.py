"""A third, independent judge for the DNA recipe's guided samples: a small CNN on clean windows.

The recipe's two judges are k-mer logistic regressions. The phase-aware one reads 1- to 3-mers
per codon phase, the same statistics as the Markov classifier that `recipes/dna-labelled.yaml`
guides with, so its verdict on classifier-guided samples is not fully independent. This script
trains a `ConvClassifierNet` (4 blocks, width 64, learned absolute positions) on the real
training windows only, at zero noise (1,500 AdamW steps of 64 windows, seed 0), reports its
accuracy on the real held-out windows of each label, and the rate at which it assigns the
requested label to 256 guided samples (first-hitting sampler, exact classifier guidance,
generator seed 1) of a labelled run:

    .venv/bin/python benchmarks/guidance_cnn_judge.py runs/dna-labelled-...   # about 7 minutes

Results are printed (docs/recipes/dna.md, "Labels and guidance", quotes them).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ddiff.domains import dna
from ddiff.guidance import ClassifierFreeGuidance, ClassifierGuidance, select_label
from ddiff.nets import ConvClassifierNet
from ddiff.pretrained import load_pretrained
from ddiff.recipes import guided
from ddiff.samplers import FirstHittingSampler

CELLS = [
    ("gene", "none", 0.0),
    ("gene", "classifier", 1.0),
    ("gene", "classifier", 2.0),
    ("gene", "free", 2.0),
    ("promoter", "classifier", 1.0),
    ("promoter", "classifier", 2.0),
    ("promoter", "free", 1.0),
]


def train_judge(x: torch.Tensor, y: torch.Tensor, steps: int = 1500) -> ConvClassifierNet:
    torch.manual_seed(0)
    net = ConvClassifierNet(5, 2, dim=64, depth=4, cond_dim=64, max_length=x.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = torch.nn.functional.cross_entropy(net(x[idx], _clean(64)), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def _clean(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.float64)


@torch.no_grad()
def predict(net: ConvClassifierNet, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(b, _clean(len(b))).argmax(-1) for b in x.split(256)])


def main() -> None:
    torch.set_num_threads(1)
    run = Path(sys.argv[1])
    pre = load_pretrained(run / "pretrained")
    xtr, ytr = dna.load_labelled("train")
    xh, yh = dna.load_labelled("heldout")
    start = time.perf_counter()
    judge = train_judge(xtr, ytr)
    pred = predict(judge, xh)
    acc = {name: float((pred[yh == c] == c).double().mean()) for c, name in enumerate(dna.LABELS)}
    print(f"CNN judge: {time.perf_counter() - start:.0f} s; held-out accuracy {acc}", flush=True)
    clf = guided.load_classifier(run, pre.labels, pre.graph)
    sampler = FirstHittingSampler(pre.graph, pre.schedule)
    for label, kind, w in CELLS:
        c = dna.LABELS.index(label)
        if kind == "none":
            fn = pre.net.bind_label(None)
        elif kind == "free":
            fn = ClassifierFreeGuidance(
                pre.net.bind_label(c), pre.net.bind_label(None), w, graph=pre.graph
            )
        else:
            fn = ClassifierGuidance(
                pre.net.bind_label(None), select_label(clf, c), w, graph=pre.graph, mode="exact"
            )
        x = sampler.sample(fn, 256, xh.shape[1], None, generator=torch.Generator().manual_seed(1))
        rate = float((predict(judge, x) == c).double().mean())
        print(
            f"{label} {kind} w={w:g}: CNN-judge rate {rate:.3f} (real {acc[label]:.3f})", flush=True
        )


if __name__ == "__main__":
    main()
