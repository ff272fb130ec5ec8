"""The training loop: events, determinism, control, divergence, validation."""

from __future__ import annotations

import threading

import pytest
import torch

from conftest import synthetic_dataset
from fa_core.models import build_model
from fa_core.training import (
    OPTIMIZERS,
    AnglesMeasured,
    ConfigError,
    EpochEnded,
    RunControl,
    RunEnded,
    RunFailed,
    RunStarted,
    StepLosses,
    TrainConfig,
    add_noise,
    make_step,
    model_loss,
    train,
)


def quick(**overrides) -> TrainConfig:
    base = dict(dataset="mnist", model="mlp", rule="fa", epochs=2, batch_size=32, lr=0.05, device="cpu", seed=0)
    return TrainConfig(**{**base, **overrides})


def run(config, dataset, control=None):
    return list(train(config, control=control, dataset=dataset))


def test_short_run_accuracy_rises_and_events_are_complete(tiny_mnist):
    events = run(quick(epochs=3), tiny_mnist)
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunEnded) and events[-1].status == "finished"
    epochs = [e.record for e in events if isinstance(e, EpochEnded)]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert epochs[-1]["test_accuracy"] > 90.0
    assert epochs[-1]["test_accuracy"] > epochs[0]["test_accuracy"] - 1e-9 or epochs[0]["test_accuracy"] > 90
    losses = [v for e in events if isinstance(e, StepLosses) for v in e.losses]
    assert len(losses) == events[0].total_steps
    firsts = [e.first_step for e in events if isinstance(e, StepLosses)]
    assert firsts[0] == 1 and firsts == sorted(firsts)
    assert set(epochs[-1]) >= {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "angles"}
    assert "fc2" in epochs[-1]["angles"] and "fc1" in epochs[-1]["signal_angles"]
    angles = [e for e in events if isinstance(e, AnglesMeasured)]
    assert angles[0].step == 0 and len(angles) > 3


def test_fa_angle_falls_below_90_while_learning():
    data = synthetic_dataset(n_train=2048)
    events = run(quick(epochs=3, lr=0.1), data)
    first = next(e for e in events if isinstance(e, AnglesMeasured))
    last = [e for e in events if isinstance(e, AnglesMeasured)][-1]
    assert last.weight["fc2"] < first.weight["fc2"] - 1.0
    assert last.signal["fc1"] < 90.0


def test_same_seed_is_deterministic_and_batch_order_is_rule_independent(tiny_mnist):
    a = [e.record for e in run(quick(), tiny_mnist) if isinstance(e, EpochEnded)]
    b = [e.record for e in run(quick(), tiny_mnist) if isinstance(e, EpochEnded)]
    assert a == b
    # BP and FA from the same seed see the same first batch with the same weights: identical first loss.
    fa_first = next(e for e in run(quick(epochs=1), tiny_mnist) if isinstance(e, StepLosses)).losses[0]
    bp_first = next(e for e in run(quick(epochs=1, rule="bp"), tiny_mnist) if isinstance(e, StepLosses)).losses[0]
    assert fa_first == bp_first


def test_stop_ends_cleanly_with_a_test_evaluation(tiny_mnist):
    control = RunControl()
    events = []
    for event in train(quick(epochs=5), control=control, dataset=tiny_mnist, log_interval_s=0.0):
        events.append(event)
        if isinstance(event, StepLosses):
            control.stop()
    end = events[-1]
    assert isinstance(end, RunEnded) and end.status == "stopped"
    assert end.final["partial_epoch"] and end.final["test_accuracy"] is not None
    assert end.step < events[0].total_steps


def test_pause_blocks_until_resumed(tiny_mnist):
    control = RunControl()
    gen = train(quick(epochs=1), control=control, dataset=tiny_mnist, log_interval_s=0.0)
    assert isinstance(next(gen), RunStarted)
    assert isinstance(next(gen), AnglesMeasured)  # measured before the first step
    control.pause()
    result = []
    worker = threading.Thread(target=lambda: result.append(next(gen)))
    worker.start()
    worker.join(0.5)
    assert worker.is_alive() and not result
    control.resume()
    worker.join(10)
    assert not worker.is_alive() and isinstance(result[0], StepLosses)
    gen.close()


def test_divergence_ends_with_a_clear_error_event(tiny_mnist):
    events = run(quick(lr=1e6, epochs=1, rule="bp"), tiny_mnist)
    assert isinstance(events[-1], RunFailed)
    assert "diverged" in events[-1].message and "learning rate" in events[-1].message


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        ({"lr": 0}, "learning rate"),
        ({"lr": -1.0}, "learning rate"),
        ({"epochs": 0}, "epochs"),
        ({"sigma": -5.0}, "sigma"),
        ({"rule": "nope"}, "unknown learning rule"),
        ({"model": "resnet"}, "unknown model"),
        ({"rule": "fa_ex", "rule_params": {"p": 101}}, "between 0 and 100"),
        ({"train_limit": 10, "batch_size": 32}, "larger than"),
        ({"device": "cuda:7"} if not torch.cuda.is_available() else {"device": "tpu"}, "device"),
    ],
)
def test_bad_configs_are_refused_with_clear_messages(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        quick(**overrides).validate()


def test_batch_larger_than_dataset_is_refused(tiny_mnist):
    with pytest.raises(ConfigError, match="larger than the training set"):
        run(quick(batch_size=10_000), tiny_mnist)


def test_dae_reports_test_bce_and_noise_follows_the_paper(tiny_mnist):
    events = run(quick(model="dae", optimizer="rmsprop", lr=1e-3, batch_size=64, sigma=100.0), tiny_mnist)
    records = [e.record for e in events if isinstance(e, EpochEnded)]
    assert records[-1]["test_bce"] < records[0]["test_bce"] + 1e-9
    assert records[-1]["test_accuracy"] is None
    clean = torch.full((10000,), 0.5)
    noisy = add_noise(clean, 255.0, torch.Generator().manual_seed(0))
    assert (noisy - clean).std().item() == pytest.approx(1.0, rel=0.05)
    assert noisy.max() > 1.0  # no clipping


def test_config_round_trip_and_unknown_keys():
    config = quick(rule="fa_ex", rule_params={"p": 80.0})
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown configuration keys: colour"):
        TrainConfig.from_dict({"colour": "red"})


def test_step_metrics_stay_on_the_device_until_an_event(tiny_mnist):
    """With a long log interval the loop reads losses back once per epoch (at its end), and the
    epoch record's loss and accuracy are those accumulated on the device over every step."""
    events = list(train(quick(epochs=2), dataset=tiny_mnist, log_interval_s=1e9))
    started = events[0]
    chunks = [e for e in events if isinstance(e, StepLosses)]
    assert [len(c.losses) for c in chunks] == [started.steps_per_epoch] * 2
    records = [e.record for e in events if isinstance(e, EpochEnded)]
    for chunk, record in zip(chunks, records):
        assert record["train_loss"] == pytest.approx(sum(chunk.losses) / len(chunk.losses), rel=1e-5)
        assert 0.0 < record["train_accuracy"] <= 100.0


@pytest.mark.parametrize("model_name", ["lc_cnn", "conv_cnn"])
def test_plain_sgd_step_equals_torch_sgd(model_name) -> None:
    """Networks outside the dense step use autograd; with plain SGD the update is applied in
    place, and must equal ``torch.optim.SGD`` (a learning-rate change included)."""
    reference = build_model(model_name, "mnist", "fa", seed=4)
    fast = build_model(model_name, "mnist", "fa", seed=4)
    opt_ref = OPTIMIZERS["sgd"](reference.parameters(), 0.05, 0.0)
    opt_fast = OPTIMIZERS["sgd"](fast.parameters(), 0.05, 0.0)
    step = make_step(fast, opt_fast)
    gen = torch.Generator().manual_seed(0)
    for k in range(3):
        if k == 2:
            for opt in (opt_ref, opt_fast):
                opt.param_groups[0]["lr"] = 0.02
        x, y = torch.rand(8, 1, 28, 28, generator=gen), torch.randint(0, 10, (8,), generator=gen)
        loss_ref = model_loss("classify", reference(x), y)
        opt_ref.zero_grad()
        loss_ref.backward()
        opt_ref.step()
        loss, _ = step(x, y)
        torch.testing.assert_close(loss, loss_ref.detach())
    for (name, a), b in zip(reference.named_parameters(), fast.parameters()):
        torch.testing.assert_close(b, a, msg=name)
    assert not torch.equal(build_model(model_name, "mnist", "fa", seed=4).fc3.weight, fast.fc3.weight)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cosine_schedule_sets_each_steps_learning_rate(monkeypatch, optimizer):
    import math

    import fa_core.training as training

    seen: list[float] = []
    real_make_step = training.make_step

    def spying_make_step(model, opt):
        step = real_make_step(model, opt)

        def spy(inputs, target):
            seen.append(opt.param_groups[0]["lr"])
            return step(inputs, target)

        return spy

    monkeypatch.setattr(training, "make_step", spying_make_step)
    data = synthetic_dataset(n_train=256)
    config = quick(optimizer=optimizer, lr=0.02, lr_schedule="cosine", epochs=2)
    events = run(config, data)
    total = events[0].total_steps
    assert len(seen) == total == 16
    expected = [0.02 * 0.5 * (1 + math.cos(math.pi * t / total)) for t in range(total)]
    assert seen == pytest.approx(expected, rel=1e-12)
    assert seen[0] == 0.02 and seen[-1] < 0.02 * 0.01
    constant = run(quick(optimizer=optimizer, lr=0.02, epochs=2), data)
    assert [e.record["train_loss"] for e in events if isinstance(e, EpochEnded)] != \
        [e.record["train_loss"] for e in constant if isinstance(e, EpochEnded)]


def test_unknown_schedule_is_refused_by_name():
    with pytest.raises(ConfigError, match="unknown learning-rate schedule 'step'.*constant, cosine"):
        quick(lr_schedule="step").validate()
    with pytest.raises(ConfigError, match="unknown learning-rate schedule"):
        quick(lr_schedule=["cosine"]).validate()  # e.g. from a hand-edited config file
