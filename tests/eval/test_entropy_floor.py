"""No model beats the entropy: the diffusion bound and the AR model's NLL on a tiny source.

The benchmark tables (docs/benchmarks.md) report bound - entropy and NLL - entropy; this checks,
in the default test run, that what they compare with is a floor the estimates respect: a
diffusion model's estimated bound is >= the exact entropy up to its Monte Carlo error, and an
autoregressive model's exact cross-entropy with the source (by enumeration of every sequence)
is >= the entropy with no tolerance at all.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import lightning as L
import pytest
import torch

from ddiff import AbsorbingGraph, LogLinearSchedule
from ddiff.eval import bits_per_token
from ddiff.nets import CausalTransformer, ScaledAbsorbingParameterization, TransformerScoreNet
from ddiff.testing import MarkovSource
from ddiff.training import AutoregressiveModule, DiffusionModule, OptimSettings, TokenDataModule

LENGTH = 6


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Training on one thread: on a busy 2-core machine two threads can be 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fit(module: L.LightningModule, train: torch.Tensor, steps: int) -> None:
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=TokenDataModule(train, batch_size=32, seed=0))


def test_bound_and_ar_nll_stay_above_the_entropy() -> None:
    source = MarkovSource.random(3, LENGTH, seed=0, concentration=0.5)
    entropy = source.entropy_per_token("bits")
    train = source.sample(4096, torch.Generator().manual_seed(1))
    heldout = source.sample(1024, torch.Generator().manual_seed(2))
    optim = OptimSettings(lr=3e-3, warmup_steps=10, ema_decay=0.9)
    torch.manual_seed(0)

    graph, schedule = AbsorbingGraph(3), LogLinearSchedule(survival=0.0)
    param = ScaledAbsorbingParameterization(graph)
    net = TransformerScoreNet.from_preset("tiny", graph.num_states, parameterization=param)
    diffusion = DiffusionModule(graph, schedule, net, optim)
    fit(diffusion, train, steps=60)
    bound = bits_per_token((diffusion.averaged_net, graph, schedule), heldout, num_t=4, seed=0)
    # Learned something (the uniform model is log2 3 = 1.585 bits), never beats the entropy.
    assert bound.bits_per_token < 1.45
    assert bound.bits_per_token >= entropy - 3 * bound.stderr, (bound, entropy)

    ar = AutoregressiveModule(CausalTransformer.from_preset("tiny", 3), optim)
    fit(ar, train, steps=60)
    model = ar.averaged_net.eval()
    nll = bits_per_token(model, heldout)
    assert nll.exact and nll.bits_per_token < 1.45
    assert nll.bits_per_token >= entropy - 3 * nll.stderr, (nll, entropy)
    # The expected NLL under the source is the cross-entropy H(p, q) = H(p) + KL(p || q) >= H(p):
    # exact, by enumerating all 3^6 sequences.
    every = torch.tensor(list(itertools.product(range(3), repeat=LENGTH)))
    p = source.nll(every).neg().exp()
    with torch.no_grad():
        q_nll = model.nll(every).double()
    cross_entropy = float((p * q_nll).sum()) / LENGTH / torch.log(torch.tensor(2.0)).item()
    assert cross_entropy >= entropy
    assert abs(cross_entropy - nll.bits_per_token) < 4 * nll.stderr
