"""The noisy classifier: trained on noised labelled data, it approaches the exact p(c | x_t)."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from ddiff import AbsorbingGraph, LogLinearSchedule, UniformGraph
from ddiff.guidance import ClassifierGuidance, select_label
from ddiff.nets import ConvClassifierNet, NoisyClassifierNet
from ddiff.testing import LabelledOracle
from ddiff.training import ClassifierModule, OptimSettings, TokenBatch, TokenDataModule

GRAPH = AbsorbingGraph(3)
SCHEDULE = LogLinearSchedule(survival=0.0)


def labelled_data(oracle: LabelledOracle, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = oracle.unconditional.sample_data(n, g)
    p_c = torch.exp(oracle.log_classifier(x0, torch.zeros(n, dtype=torch.float64)))
    return x0, torch.multinomial(p_c, 1, generator=g)[:, 0]


def small_net(num_states: int = 4, kind: str = "transformer") -> NoisyClassifierNet:
    torch.manual_seed(0)
    if kind == "conv":
        return ConvClassifierNet(num_states, 2, max_length=3, dim=32, depth=2, cond_dim=32)
    return NoisyClassifierNet(num_states, 2, dim=32, depth=2, heads=2, cond_dim=32)


@pytest.mark.parametrize("kind", ["transformer", "conv"])
def test_trained_classifier_approaches_the_exact_noisy_classifier(
    kind: str, one_thread: None
) -> None:
    """Held-out accuracy per noise level within 0.05 of the exact p(c | x_t)'s (Bayes optimal),
    and falling with the noise."""
    oracle = LabelledOracle.random(GRAPH, length=3, num_labels=2, seed=5, label_concentration=0.2)
    x0, c = labelled_data(oracle, 4096, seed=0)
    module = ClassifierModule(
        GRAPH,
        SCHEDULE,
        small_net(kind=kind),
        OptimSettings(lr=3e-3, warmup_steps=10, ema_decay=None),
    )
    opt = torch.optim.AdamW(module.net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(400):
        rows = torch.randint(0, 4096, (128,), generator=g)
        loss = module.loss(
            TokenBatch(x0[rows], torch.full((128,), 3), c[rows]), torch.rand(128, generator=g), g
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    x_val, c_val = labelled_data(oracle, 4000, seed=2)
    times = ClassifierModule.bin_times()
    trained = module.accuracy_by_noise(x_val, c_val, times, torch.Generator().manual_seed(3))
    bayes = {}
    for t in times:
        sigma = SCHEDULE.total(torch.full((4000,), t, dtype=torch.float64))
        x_t = GRAPH.sample_transition(x_val, sigma, torch.Generator().manual_seed(3))
        bayes[t] = float((oracle.log_classifier(x_t, sigma).argmax(-1) == c_val).double().mean())
    print({t: (round(trained[t], 3), round(bayes[t], 3)) for t in times})
    for t in times:
        assert trained[t] > bayes[t] - 0.05, (t, trained[t], bayes[t])
    assert trained[times[0]] > trained[times[-1]] + 0.1


@pytest.mark.parametrize("kind", ["transformer", "conv"])
def test_one_hot_input_equals_tokens_and_first_order_guidance_runs(kind: str) -> None:
    net = small_net(kind=kind)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x_t = torch.tensor([[3, 0, 3], [1, 3, 2]])
    sigma = torch.tensor([0.5, 1.0], dtype=torch.float64)
    one_hot = torch.nn.functional.one_hot(x_t, 4).float()
    with torch.no_grad():
        torch.testing.assert_close(net(one_hot, sigma), net(x_t, sigma))
    zero = lambda x, s: torch.zeros(*x.shape, 4)  # noqa: E731
    classifier = select_label(net, 1)
    with torch.no_grad():
        exact = ClassifierGuidance(zero, classifier, 1.0, graph=GRAPH)(x_t, sigma)
        first = ClassifierGuidance(zero, classifier, 1.0, graph=GRAPH, mode="first_order")(
            x_t, sigma
        )
    masked = x_t == 3
    assert torch.isfinite(first).all() and bool((first[~masked] == 0).all())
    assert float((exact - first)[masked].abs().max()) < 1.0  # an approximation, same scale


def test_validation_logs_accuracy_per_noise_level() -> None:
    oracle = LabelledOracle.random(UniformGraph(3), length=3, num_labels=2, seed=5)
    x0, c = labelled_data(oracle, 64, seed=0)
    dm = TokenDataModule(x0, x0, batch_size=16, train_labels=c, val_labels=c, num_labels=2)
    module = ClassifierModule(UniformGraph(3), LogLinearSchedule(), small_net(3))
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        val_check_interval=2,
        limit_val_batches=2,
    )
    trainer.fit(module, datamodule=dm)
    metrics = trainer.callback_metrics
    for key in (
        "val/accuracy",
        "val/loss",
        *(f"val/accuracy_t{t:g}" for t in ClassifierModule.bin_times()),
    ):
        assert key in metrics, key
    saved: dict = {}
    module.on_save_checkpoint(saved)
    assert saved["ddiff"]["kind"] == "classifier" and saved["ddiff"]["num_labels"] == 2


def test_errors() -> None:
    with pytest.raises(ValueError, match="reads 4 states but the graph has 3"):
        ClassifierModule(UniformGraph(3), LogLinearSchedule(), small_net(4))
    module = ClassifierModule(GRAPH, SCHEDULE, small_net())
    with pytest.raises(ValueError, match="a classifier trains on labelled data"):
        module.loss(
            TokenBatch(torch.zeros(2, 3, dtype=torch.long), torch.full((2,), 3)), torch.rand(2)
        )
    with pytest.raises(ValueError, match="num_labels must be an integer >= 2"):
        NoisyClassifierNet(4, 1)


def test_absolute_positions_are_optional_and_checked() -> None:
    """`max_length` adds a position table after every other weight: the rest is drawn as
    without it, positions change the output, one-hot input still equals tokens."""
    torch.manual_seed(0)
    plain = NoisyClassifierNet(4, 2, dim=16, depth=1, heads=2, cond_dim=8)
    torch.manual_seed(0)
    placed = NoisyClassifierNet(4, 2, dim=16, depth=1, heads=2, cond_dim=8, max_length=5)
    for name, value in plain.state_dict().items():
        assert torch.equal(placed.state_dict()[name], value), name
    assert set(placed.state_dict()) - set(plain.state_dict()) == {"position.weight"}
    with torch.no_grad():
        for p in placed.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x_t, sigma = torch.tensor([[0, 1, 2, 3]]), torch.tensor([0.5])
    one_hot = torch.nn.functional.one_hot(x_t, 4).float()
    with torch.no_grad():
        torch.testing.assert_close(placed(one_hot, sigma), placed(x_t, sigma))
        moved = placed(torch.tensor([[3, 0, 1, 2]]), sigma)  # same tokens, rotated
    assert not torch.allclose(moved, placed(x_t, sigma))
    with pytest.raises(ValueError, match="longer than max_length = 5"):
        placed(torch.zeros(1, 6, dtype=torch.long), sigma)
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        NoisyClassifierNet(4, 2, max_length=0)


def test_conv_classifier_checks_its_sizes() -> None:
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer"):
        ConvClassifierNet(4, 2, max_length=8, kernel_size=4)
    with pytest.raises(ValueError, match="num_labels must be an integer >= 2"):
        ConvClassifierNet(4, 1, max_length=8)
    net = ConvClassifierNet(4, 2, max_length=8, dim=8, depth=1)
    with pytest.raises(ValueError, match="longer than max_length = 8"):
        net(torch.zeros(1, 9, dtype=torch.long), torch.tensor([0.5]))
