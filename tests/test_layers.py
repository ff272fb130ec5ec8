"""Gradient identities of every layer under every rule.

* BP mode equals PyTorch's own layers (the locally connected layer: an explicit per-position loop).
* FA's input gradient equals the output gradient times B (computed independently).
* The weight gradient is the same under BP and FA (the local update).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fa_core import FeedbackConv2d, FeedbackLinear, LocallyConnected2d, get_rule

RULE_SPECS = [("fa", {}), ("fa_ex", {"p": 100}), ("fa_ex", {"p": 30})]


@pytest.fixture(autouse=True)
def float64_by_default():
    """Exact comparisons in double precision, restored afterwards for the other test modules."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _grads(layer, x, grad_out):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    out.backward(grad_out)
    return out.detach(), x.grad, layer.weight.grad.clone(), layer.bias.grad.clone()


def _same_weights(make, rule):
    """A layer under ``rule`` with the forward weights of a BP twin."""
    torch.manual_seed(0)
    bp = make("bp")
    other = make(rule)
    other.load_state_dict({**bp.state_dict(), **({"feedback": other.feedback} if other.feedback is not None else {})})
    return bp, other


# ---------- FeedbackLinear ----------

def make_linear(rule):
    return FeedbackLinear(7, 5, rule=rule).double()


def test_linear_bp_equals_torch_linear():
    torch.manual_seed(1)
    layer = make_linear("bp")
    ref = torch.nn.Linear(7, 5).double()
    ref.load_state_dict({"weight": layer.weight.detach(), "bias": layer.bias.detach()})
    x, g = torch.randn(4, 7), torch.randn(4, 5)
    out, gx, gw, gb = _grads(layer, x, g)
    xr = x.clone().requires_grad_(True)
    ref(xr).backward(g)
    torch.testing.assert_close(out, ref(x))
    torch.testing.assert_close(gx, xr.grad)
    torch.testing.assert_close(gw, ref.weight.grad)
    torch.testing.assert_close(gb, ref.bias.grad)
    assert layer.feedback is None


@pytest.mark.parametrize("rule,params", RULE_SPECS)
def test_linear_feedback_input_gradient_is_output_gradient_times_b(rule, params):
    torch.manual_seed(2)
    layer = FeedbackLinear(7, 5, rule=get_rule(rule, **params)).double()
    x, g = torch.randn(4, 7), torch.randn(4, 5)
    _, gx, _, _ = _grads(layer, x, g)
    torch.testing.assert_close(gx, g @ layer.feedback)
    assert not torch.allclose(gx, g @ layer.weight.detach())


@pytest.mark.parametrize("rule,params", RULE_SPECS)
def test_linear_weight_gradient_identical_under_bp_and_fa(rule, params):
    bp, fa = _same_weights(lambda r: FeedbackLinear(7, 5, rule=get_rule(r, **params) if r != "bp" else r).double(), rule)
    x, g = torch.randn(4, 7), torch.randn(4, 5)
    out_bp, _, gw_bp, gb_bp = _grads(bp, x, g)
    out_fa, _, gw_fa, gb_fa = _grads(fa, x, g)
    torch.testing.assert_close(out_bp, out_fa)
    torch.testing.assert_close(gw_bp, gw_fa)
    torch.testing.assert_close(gb_bp, gb_fa)


def test_feedback_is_a_buffer_not_a_parameter():
    layer = FeedbackLinear(7, 5, rule="fa")
    assert layer.feedback.shape == layer.weight.shape
    assert all(p is not layer.feedback for p in layer.parameters())
    assert "feedback" in layer.state_dict()
    assert not layer.feedback.requires_grad


def test_fa_feedback_drawn_like_the_weight():
    layer = FeedbackLinear(400, 300, rule="fa")
    bound = 1 / 400**0.5
    assert layer.feedback.abs().max() <= bound
    assert layer.feedback.abs().max() > 0.95 * bound
    assert abs(layer.feedback.mean()) < 0.05 * bound


@pytest.mark.parametrize("p", [0, 20, 50, 80, 100])
def test_fa_ex_feedback_has_p_percent_positive_entries(p):
    layer = FeedbackLinear(50, 40, rule=get_rule("fa_ex", p=p, c=0.5))
    values = set(layer.feedback.unique().tolist())
    assert values <= {-0.5, 0.5}
    assert (layer.feedback > 0).sum().item() == round(2000 * p / 100)


# ---------- FeedbackConv2d ----------

def test_conv_bp_equals_torch_conv2d():
    torch.manual_seed(3)
    layer = FeedbackConv2d(3, 4, 3, stride=2, padding=1, rule="bp").double()
    ref = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1).double()
    ref.load_state_dict({"weight": layer.weight.detach(), "bias": layer.bias.detach()})
    x = torch.randn(2, 3, 9, 9)
    g = torch.randn(2, 4, 5, 5)
    out, gx, gw, gb = _grads(layer, x, g)
    xr = x.clone().requires_grad_(True)
    ref(xr).backward(g)
    torch.testing.assert_close(out, ref(x))
    torch.testing.assert_close(gx, xr.grad)
    torch.testing.assert_close(gw, ref.weight.grad)
    torch.testing.assert_close(gb, ref.bias.grad)


@pytest.mark.parametrize("rule,params", RULE_SPECS)
def test_conv_input_gradient_is_transposed_conv_with_b(rule, params):
    torch.manual_seed(4)
    layer = FeedbackConv2d(3, 4, 3, padding=1, rule=get_rule(rule, **params)).double()
    x, g = torch.randn(2, 3, 6, 6), torch.randn(2, 4, 6, 6)
    _, gx, _, _ = _grads(layer, x, g)
    expected = F.conv_transpose2d(g, layer.feedback, padding=1)
    torch.testing.assert_close(gx, expected)


@pytest.mark.parametrize("rule,params", RULE_SPECS)
def test_conv_weight_gradient_identical_under_bp_and_fa(rule, params):
    bp, fa = _same_weights(
        lambda r: FeedbackConv2d(3, 4, 3, padding=1, rule=get_rule(r, **params) if r != "bp" else r).double(), rule
    )
    x, g = torch.randn(2, 3, 6, 6), torch.randn(2, 4, 6, 6)
    _, _, gw_bp, gb_bp = _grads(bp, x, g)
    _, _, gw_fa, gb_fa = _grads(fa, x, g)
    torch.testing.assert_close(gw_bp, gw_fa)
    torch.testing.assert_close(gb_bp, gb_fa)


# ---------- LocallyConnected2d ----------

def explicit_local(x, filters, bias, padding, stride=1):
    """Per-position reference: out[n, o, i, j] = sum(filter[o, :, :, :, i, j] * patch(i, j)) + bias."""
    n, c, h, w = x.shape
    o, _, k, _, oh, ow = filters.shape
    xp = F.pad(x, (padding,) * 4)
    out = torch.empty(n, o, oh, ow)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, :, i, j] = torch.einsum("nckl,ockl->no", patch, filters[..., i, j]) + bias[:, i, j]
    return out


def make_local(rule, stride=1):
    layer = LocallyConnected2d(2, 3, 3, input_size=(5, 6), stride=stride, padding=1, rule=rule).double()
    with torch.no_grad():
        layer.bias.normal_()
    return layer


@pytest.mark.parametrize("stride", [1, 2])
def test_local_bp_equals_explicit_per_position_computation(stride):
    torch.manual_seed(5)
    layer = make_local("bp", stride)
    x = torch.randn(2, 2, 5, 6, requires_grad=True)
    filters = layer.filters().detach().clone().requires_grad_(True)
    bias = layer.bias.detach().t().reshape(3, *layer.output_size).clone().requires_grad_(True)
    out = layer(x)
    ref = explicit_local(x, filters, bias, padding=1, stride=stride)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    gx_ref, gf_ref, gb_ref = torch.autograd.grad(ref, (x, filters, bias), g)
    out.backward(g)
    torch.testing.assert_close(x.grad, gx_ref)
    torch.testing.assert_close(layer.filters(layer.weight.grad), gf_ref)
    torch.testing.assert_close(layer.bias.grad.t().reshape(3, *layer.output_size), gb_ref)


@pytest.mark.parametrize("rule,params", RULE_SPECS)
def test_local_input_gradient_is_output_gradient_times_b(rule, params):
    torch.manual_seed(6)
    layer = make_local(get_rule(rule, **params))
    x = torch.randn(2, 2, 5, 6, requires_grad=True)
    out = layer(x)
    g = torch.randn_like(out)
    out.backward(g)
    # The input gradient of the explicit computation w.r.t. x, with B's filters in place of W's.
    xr = x.detach().clone().requires_grad_(True)
    ref = explicit_local(xr, layer.filters(layer.feedback), torch.zeros(3, *layer.output_size), padding=1)
    expected, = torch.autograd.grad(ref, xr, g)
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize("rule,params", RULE_SPECS)
def test_local_weight_gradient_identical_under_bp_and_fa(rule, params):
    bp, fa = _same_weights(lambda r: make_local(get_rule(r, **params) if r != "bp" else r), rule)
    fa.bias.data.copy_(bp.bias.data)
    x = torch.randn(2, 2, 5, 6)
    g = torch.randn(2, 3, *bp.output_size)
    out_bp, _, gw_bp, gb_bp = _grads(bp, x, g)
    out_fa, _, gw_fa, gb_fa = _grads(fa, x, g)
    torch.testing.assert_close(out_bp, out_fa)
    torch.testing.assert_close(gw_bp, gw_fa)
    torch.testing.assert_close(gb_bp, gb_fa)


def test_local_filters_differ_by_position_and_init_matches_paper():
    layer = LocallyConnected2d(1, 6, 5, input_size=28, padding=2, rule="fa")
    assert layer.weight.shape == (28 * 28, 25, 6)
    assert layer.feedback.shape == layer.weight.shape
    assert layer.weight.abs().max() <= 0.2 and layer.feedback.abs().max() <= 0.2
    filters = layer.filters()
    assert filters.shape == (6, 1, 5, 5, 28, 28)
    assert not torch.equal(filters[..., 0, 0], filters[..., 5, 5])
    assert torch.count_nonzero(layer.bias) == 0


def test_local_rejects_wrong_input_shape():
    layer = LocallyConnected2d(1, 2, 3, input_size=8, padding=1)
    with pytest.raises(ValueError, match="expects input"):
        layer(torch.randn(1, 1, 9, 9))


def test_layers_move_feedback_with_to():
    layer = FeedbackLinear(3, 2, rule="fa").to(torch.float32)
    assert layer.feedback.dtype == torch.float32
    moved = layer.to("meta")
    assert moved.feedback.device.type == "meta"


@pytest.mark.parametrize("stride,padding", [(1, 2), (2, 1), (1, 0)])
def test_batch_last_patches_and_fold_match_unfold_and_fold(stride, padding):
    """The locally connected layer's patch gather is F.unfold in (L, C*k*k, N) order and its
    scatter-add is F.fold, the adjoint."""
    from fa_core.autograd import fold_local_patches, local_patches

    torch.manual_seed(7)
    x = torch.randn(3, 2, 7, 9)
    patches = local_patches(x, 3, stride, padding)
    expected = F.unfold(x, 3, padding=padding, stride=stride).permute(2, 1, 0)
    torch.testing.assert_close(patches, expected)
    grad = torch.randn_like(patches)
    folded = fold_local_patches(grad, tuple(x.shape), 3, stride, padding)
    torch.testing.assert_close(folded, F.fold(grad.permute(2, 1, 0), (7, 9), 3, padding=padding, stride=stride))
