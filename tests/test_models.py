"""The paper's architectures."""

from __future__ import annotations

import pytest
import torch

from fa_core import build_model, feedback_layers
from fa_core.layers import FeedbackConv2d, LocallyConnected2d


@pytest.mark.parametrize("dataset,shape", [("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))])
@pytest.mark.parametrize("name", ["mlp", "lc_cnn", "conv_cnn", "dae"])
def test_every_model_runs_forward_and_backward(name, dataset, shape):
    model = build_model(name, dataset=dataset, rule="fa", seed=0)
    x = torch.rand(2, *shape)
    out = model(x)
    assert out.shape == ((2, 10) if model.task == "classify" else (2, *shape))
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_lc_cnn_shapes_follow_the_paper():
    mnist = build_model("lc_cnn", "mnist", "fa")
    lcs = [m for _, m in feedback_layers(mnist) if isinstance(m, LocallyConnected2d)]
    assert [(m.in_channels, m.out_channels, m.output_size) for m in lcs] == [(1, 6, (28, 28)), (6, 16, (14, 14))]
    assert mnist.fc3.in_features == 16 * 7 * 7
    cifar = build_model("lc_cnn", "cifar10", "fa")
    lcs = [m for _, m in feedback_layers(cifar) if isinstance(m, LocallyConnected2d)]
    assert [m.output_size for m in lcs] == [(32, 32), (15, 15), (7, 7)]
    assert cifar.fc4.in_features == 64 * 3 * 3
    conv = build_model("conv_cnn", "cifar10", "bp")
    assert sum(isinstance(m, FeedbackConv2d) for m in conv.modules()) == 3


def test_same_seed_gives_same_forward_weights_for_every_rule():
    models = [build_model("lc_cnn", "mnist", rule, seed=7, **params) for rule, params in [("bp", {}), ("fa", {}), ("fa_ex", {"p": 100})]]
    params = [dict(m.named_parameters()) for m in models]
    for other in params[1:]:
        for name, tensor in params[0].items():
            assert torch.equal(tensor, other[name]), name
    assert models[0].fc3.feedback is None
    assert not torch.equal(models[1].fc3.feedback, models[1].fc3.weight)


def test_dae_feedback_uses_kaiming_a_half():
    model = build_model("dae", "mnist", "fa", seed=0)
    bound = (2 / 1.25) ** 0.5 * (3 / 784) ** 0.5
    assert model.fc1.feedback.abs().max() <= bound
    assert model.fc1.feedback.abs().max() > 0.95 * bound
    assert model.predict(torch.rand(1, 1, 28, 28)).min() >= 0


def test_unknown_names_are_refused_clearly():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet")
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        build_model("mlp", dataset="svhn")


def test_lc_cnn_nobias_is_lc_cnn_without_the_local_biases() -> None:
    """The reference code's LC biases never train; ``lc_cnn_nobias`` leaves them out and keeps
    every other weight and B identical to ``lc_cnn`` for a seed."""
    plain = build_model("lc_cnn", "mnist", "fa", seed=5)
    nobias = build_model("lc_cnn_nobias", "mnist", "fa", seed=5)
    local = [name for name, m in nobias.named_children() if name.startswith("lc")]
    assert local == ["lc1", "lc2"]
    assert all(getattr(nobias, name).bias is None for name in local)
    plain_state = plain.state_dict()
    for key, value in nobias.state_dict().items():
        assert torch.equal(value, plain_state[key]), key
    assert set(plain_state) - set(nobias.state_dict()) == {"lc1.bias", "lc2.bias"}
    x = torch.rand(4, 1, 28, 28)
    assert nobias(x).shape == (4, 10)


def test_lc_cnn_lc_bp_passes_w_back_through_the_local_layers_only() -> None:
    """The hybrid keeps lc_cnn's weights and FC feedback for a seed; its LC layers use W backward."""
    plain = build_model("lc_cnn", "mnist", "fa", seed=5)
    hybrid = build_model("lc_cnn_lc_bp", "mnist", "fa", seed=5)
    assert hybrid.lc1.feedback is None and hybrid.lc2.feedback is None
    assert hybrid.lc2.rule.name == "bp" and hybrid.fc3.rule.name == "fa" and hybrid.fc4.rule.name == "fa"
    plain_state = plain.state_dict()
    for key, value in hybrid.state_dict().items():
        assert torch.equal(value, plain_state[key]), key
    assert set(plain_state) - set(hybrid.state_dict()) == {"lc1.feedback", "lc2.feedback"}
    # lc2's input gradient is W's (BP) in the hybrid and B's in lc_cnn, for the same output gradient
    x = torch.rand(3, 6, 14, 14, requires_grad=True)
    grad = torch.randn(3, 16, 14, 14)
    (g_hybrid,) = torch.autograd.grad(hybrid.lc2(x), x, grad)
    (g_plain,) = torch.autograd.grad(plain.lc2(x), x, grad)
    bp = build_model("lc_cnn", "mnist", "bp", seed=5)
    (g_bp,) = torch.autograd.grad(bp.lc2(x), x, grad)
    assert torch.allclose(g_hybrid, g_bp, atol=1e-6) and not torch.allclose(g_hybrid, g_plain, atol=1e-3)
