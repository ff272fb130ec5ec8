"""Alignment angles between forward weights and feedback, and between FA's and BP's errors.

Lillicrap et al. (2016) showed that FA learns because ``W`` comes to align with ``B`` so that the
delivered error ``delta_FA`` points within 90 degrees of the true gradient ``delta_BP``. Both
angles are measured here:

* weight angle of a layer: ``arccos(<vec W, vec B> / (|W| |B|))`` in degrees;
* signal angle of a hidden layer: the same between the error FA delivers to that layer's output
  and the error backpropagation would deliver, over a fixed probe batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .layers import FeedbackLayer, feedback_layers, true_gradient

UNUSED_SUFFIX = " (B unused)"
"""Appended to the first layer's name: nothing below it learns, so its ``B`` is never used."""


def angle_degrees(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle in degrees between ``vec(a)`` and ``vec(b)`` (arccos of the cosine, clipped to [-1, 1]).

    Returns NaN when either vector is zero (no direction).
    """
    a64 = a.detach().reshape(-1).double()
    b64 = b.detach().reshape(-1).double()
    denom = a64.norm() * b64.norm()
    if denom == 0:
        return math.nan
    cosine = torch.clamp(torch.dot(a64, b64) / denom, -1.0, 1.0)
    return math.degrees(math.acos(float(cosine)))


def alignment_angles(model: nn.Module) -> dict[str, float]:
    """Per layer with a feedback tensor: the angle in degrees between its ``W`` and ``B``.

    The first layer's entry is keyed ``"<name> (B unused)"``: its ``B`` never carries an error
    (there is no learning layer below it), so that angle is meaningless. Empty under BP.
    """
    angles: dict[str, float] = {}
    for index, (name, layer) in enumerate(feedback_layers(model)):
        if layer.feedback is None:
            continue
        key = name + UNUSED_SUFFIX if index == 0 else name
        angles[key] = angle_degrees(layer.weight, layer.feedback)
    return angles


def _output_errors(
    model: nn.Module,
    layers: list[tuple[str, FeedbackLayer]],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> dict[str, torch.Tensor]:
    """dL/d(output) of each given layer under the layers' current backward operands."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        layer.register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
        for name, layer in layers
    ]
    try:
        with torch.enable_grad():
            loss = loss_fn(model(inputs), targets)
            names = list(outputs)
            grads = torch.autograd.grad(loss, [outputs[n] for n in names])
    finally:
        for handle in handles:
            handle.remove()
    return dict(zip(names, grads))


def signal_alignment_angles(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> dict[str, float]:
    """Per hidden layer: the angle in degrees between the error its output receives under the
    model's rule and the error backpropagation would deliver, on the batch ``(inputs, targets)``.

    The last layer is left out (its error is the loss gradient itself under every rule). Under BP
    every angle is 0. Parameter ``.grad`` fields are not touched.
    """
    layers = feedback_layers(model)[:-1]
    if not layers:
        return {}
    delivered = _output_errors(model, layers, inputs, targets, loss_fn)
    with true_gradient(model):
        true = _output_errors(model, layers, inputs, targets, loss_fn)
    return {name: angle_degrees(delivered[name], true[name]) for name, _ in layers}
