"""The hand-written dense step equals the autograd step for every rule, model and optimizer.

Double precision; the tolerances (1e-7 relative) allow for Adam and RMSprop dividing by the
root of tiny second moments, which magnifies summation-order rounding. A wrong rule or a wrong
derivative differs by orders of magnitude more.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fa_core.dense_step import ACTIVATIONS, DenseStep
from fa_core.layers import FeedbackLinear
from fa_core.models import Network, build_model
from fa_core.training import OPTIMIZERS, add_noise, model_loss

RULES = [("bp", {}), ("fa", {}), ("fa_ex", {"p": 100}), ("fa_ex", {"p": 30})]


@pytest.fixture(autouse=True)
def float64_by_default():
    """Double precision: the two paths must agree to rounding, not to float32 noise."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _batches(model_name: str, steps: int, batch: int = 16):
    gen = torch.Generator().manual_seed(7)
    images = torch.rand(steps, batch, 1, 28, 28, generator=gen)
    labels = torch.randint(0, 10, (steps, batch), generator=gen)
    for x, y in zip(images, labels):
        if model_name == "dae":
            yield add_noise(x, 100.0, gen), x
        else:
            yield x, y


def _autograd_step(model: Network, optimizer: torch.optim.Optimizer, inputs, target) -> tuple[torch.Tensor, torch.Tensor]:
    out = model(inputs)
    loss = model_loss(model.task, out, target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), out.detach()


@pytest.mark.parametrize("model_name", ["mlp", "dae"])
@pytest.mark.parametrize("rule,params", RULES)
@pytest.mark.parametrize("optimizer,momentum", [("sgd", 0.0), ("sgd", 0.5), ("adam", 0.0), ("rmsprop", 0.5)])
def test_dense_step_equals_autograd(model_name, rule, params, optimizer, momentum) -> None:
    """Plain SGD (momentum 0) takes the in-place update; the others the optimizer's own step."""
    reference = build_model(model_name, "mnist", rule, seed=3, **params)
    fast = build_model(model_name, "mnist", rule, seed=3, **params)
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), fast.state_dict().values()))
    lr = 0.05 if optimizer == "sgd" else 1e-3
    opt_ref = OPTIMIZERS[optimizer](reference.parameters(), lr, momentum)
    opt_fast = OPTIMIZERS[optimizer](fast.parameters(), lr, momentum)
    step = DenseStep.for_model(fast, fast.task, opt_fast)
    assert step is not None
    assert step.in_place_sgd == (optimizer == "sgd" and momentum == 0)
    for k, (inputs, target) in enumerate(_batches(model_name, steps=4)):
        if k == 2:  # a learning-rate change (a schedule) reaches both paths
            for opt in (opt_ref, opt_fast):
                opt.param_groups[0]["lr"] = lr / 2
        expected_loss, expected_out = _autograd_step(reference, opt_ref, inputs, target)
        loss, out = step(inputs, target)
        torch.testing.assert_close(loss, expected_loss, rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(out, expected_out.reshape(out.shape), rtol=1e-7, atol=1e-9)
    for (name, a), b in zip(reference.state_dict().items(), fast.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=f"{name} differs after 4 steps")
    # the run moved: a test of two frozen models would pass trivially
    start = build_model(model_name, "mnist", rule, seed=3, **params)
    assert not torch.equal(start.fc1.weight, fast.fc1.weight)


def test_fa_step_sends_the_error_through_B_not_W() -> None:
    """Under FA the hidden layer's update uses ``delta_out . B``: with B replaced, it changes
    while the output layer's update does not."""
    model = build_model("mlp", "mnist", "fa", seed=1)
    twin = build_model("mlp", "mnist", "fa", seed=1)
    twin.fc2.feedback.mul_(-1)
    steps = []
    for m in (model, twin):
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        step = DenseStep.for_model(m, m.task, opt)
        inputs, target = next(_batches("mlp", steps=1))
        step(inputs, target)
        steps.append(m)
    torch.testing.assert_close(steps[0].fc2.weight, steps[1].fc2.weight)
    assert not torch.allclose(steps[0].fc1.weight, steps[1].fc1.weight)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_listed_activation_matches_autograd(activation) -> None:
    torch.manual_seed(0)
    layers = {"fc1": FeedbackLinear(6, 5, rule="fa"), "act": activation(), "fc2": FeedbackLinear(5, 3, rule="fa")}
    from collections import OrderedDict

    ref = Network(OrderedDict(layers), name="tiny", dataset="mnist", input_shape=(6,), task="classify", rule=layers["fc1"].rule)
    fast = Network(
        OrderedDict((k, v) for k, v in ((k, _clone(m)) for k, m in layers.items())),
        name="tiny", dataset="mnist", input_shape=(6,), task="classify", rule=layers["fc1"].rule,
    )
    opt_ref, opt_fast = torch.optim.SGD(ref.parameters(), lr=0.3), torch.optim.SGD(fast.parameters(), lr=0.3)
    step = DenseStep.for_model(fast, "classify", opt_fast)
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    for _ in range(3):
        _autograd_step(ref, opt_ref, x, y)
        step(x, y)
    for a, b in zip(ref.parameters(), fast.parameters()):
        torch.testing.assert_close(b, a)


def _clone(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module)


@pytest.mark.parametrize("model_name", ["lc_cnn", "conv_cnn"])
def test_networks_with_other_layers_use_autograd(model_name) -> None:
    model = build_model(model_name, "mnist", "fa", seed=0)
    assert DenseStep.for_model(model, model.task, torch.optim.SGD(model.parameters(), lr=0.1)) is None


def test_unknown_task_uses_autograd() -> None:
    model = build_model("mlp", "mnist", "fa", seed=0)
    assert DenseStep.for_model(model, "segment", torch.optim.SGD(model.parameters(), lr=0.1)) is None
