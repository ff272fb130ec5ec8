"""A training step for fully connected networks with the gradients written out by hand.

For a stack of :class:`~fa_core.layers.FeedbackLinear` layers and elementwise activations (the
``mlp`` classifier and the ``dae`` denoiser), one step of any rule is a handful of matrix
products; on a CPU the autograd graph around them (its Python ``backward`` functions, hooks and
bookkeeping) costs more than the arithmetic at batch 32. :class:`DenseStep` does the same step
without a graph:

* forward: ``a_l = f_l(a_{l-1} W_l^T + b_l)``, keeping each layer's input and each activation's
  output;
* output error: ``delta_L = dLoss/dz_L``, for the batch-mean cross-entropy
  ``(softmax(z) - onehot(y)) / N`` and for the per-pixel binary cross-entropy on logits
  ``(sigmoid(z) - x_clean) / (N * D)``;
* backward: ``dW_l = delta_l^T a_{l-1}``, ``db_l = sum_n delta_l``, and the error sent down
  ``delta_{l-1} = (delta_l M_l) * f'_{l-1}`` where ``M_l`` is the layer's backward operand (``W``
  under backpropagation, ``B`` under feedback alignment: Lillicrap et al., 2016, Nat. Commun. 7,
  13276; the rule decides through :meth:`~fa_core.layers.FeedbackLayer.backward_operand`);
* the gradients go into ``.grad`` and the run's own optimizer steps, so SGD, Adam and RMSprop
  behave exactly as on the autograd path. Plain SGD (no momentum, weight decay, Nesterov or
  maximize) is applied in place instead, ``W -= lr * delta^T a`` as one ``addmm_``, with the
  optimizer's current ``lr``; the optimizer's own ``step`` would cost as much as the products.

The result equals the autograd path's step to float rounding (``tests/test_dense_step.py``
checks weights, biases and losses after several steps of every rule, model and optimizer).
Networks with other layers (convolutions, locally connected layers) use autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import FeedbackLinear

Tensor = torch.Tensor


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity and its backward, ``backward(delta, y) = delta * f'`` written
    in terms of the output ``y`` (PyTorch's own backward kernels: one operation each)."""

    forward: Callable[[Tensor], Tensor]
    backward: Callable[[Tensor, Tensor], Tensor]


ACTIVATIONS: dict[type[nn.Module], Activation] = {
    nn.ReLU: Activation(torch.relu, lambda delta, y: torch.ops.aten.threshold_backward(delta, y, 0)),
    nn.Tanh: Activation(torch.tanh, torch.ops.aten.tanh_backward),
    nn.Sigmoid: Activation(torch.sigmoid, torch.ops.aten.sigmoid_backward),
}
"""Activations the hand-written step supports (a new one is one entry)."""

RESHAPES: tuple[type[nn.Module], ...] = (nn.Flatten, nn.Unflatten, nn.Identity)
"""Modules that only change the shape; the step works on flat ``(N, features)`` tensors."""


def _cross_entropy(out: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Batch-mean cross-entropy of logits ``out`` and its gradient ``(softmax - onehot) / N``."""
    log_p = torch.log_softmax(out, dim=1)
    loss = F.nll_loss(log_p, target)
    grad = log_p.exp_()
    grad.scatter_add_(1, target.unsqueeze(1), grad.new_full((len(grad), 1), -1.0)).div_(out.shape[0])
    return loss, grad


def _pixel_bce(out: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Mean per-pixel binary cross-entropy on logits and its gradient ``(sigmoid - x) / numel``."""
    target = target.reshape(out.shape)
    loss = F.binary_cross_entropy_with_logits(out, target)
    grad = torch.sigmoid(out).sub_(target).div_(out.numel())
    return loss, grad


LOSSES: dict[str, Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]] = {
    "classify": _cross_entropy,
    "denoise": _pixel_bce,
}
"""The loss (value and gradient) of each task, as :func:`fa_core.training.model_loss` defines it."""


def is_plain_sgd(optimizer: torch.optim.Optimizer) -> bool:
    """SGD whose step is exactly ``p -= lr * grad``, with one parameter group."""
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    return (group["momentum"] == 0 and group["weight_decay"] == 0 and not group["nesterov"]
            and not group.get("maximize", False))


class DenseStep:
    """One hand-written training step of a fully connected network; see the module docstring.

    Build it with :meth:`for_model`, which returns ``None`` for networks it does not cover.
    Calling it with a batch ``(inputs, target)`` updates the model through ``optimizer`` and
    returns ``(loss, output)``: the batch loss (a 0-d tensor) and the network's output logits
    (``(N, features)``).
    """

    def __init__(self, plan: list[FeedbackLinear | Activation], task: str, optimizer: torch.optim.Optimizer) -> None:
        self.plan = plan
        self.loss = LOSSES[task]
        self.optimizer = optimizer
        self.in_place_sgd = is_plain_sgd(optimizer)
        self.first = next(i for i, item in enumerate(plan) if isinstance(item, FeedbackLinear))
        # Per dense layer: (layer, weight, bias, W^T view). The parameters are updated in place,
        # so these references (and the transposed view) stay valid for the model's lifetime.
        self.dense = {
            i: (item, item.weight, item.bias, item.weight.t())
            for i, item in enumerate(plan) if isinstance(item, FeedbackLinear)
        }

    @classmethod
    def for_model(cls, model: nn.Module, task: str, optimizer: torch.optim.Optimizer) -> "DenseStep | None":
        """The step for ``model``, or ``None`` if it holds anything but dense layers, the
        activations in :data:`ACTIVATIONS` and reshapes (or a parameter outside those layers)."""
        if task not in LOSSES:
            return None
        plan: list[FeedbackLinear | Activation] = []
        for module in model.children():
            if isinstance(module, FeedbackLinear):
                plan.append(module)
            elif type(module) in ACTIVATIONS:
                plan.append(ACTIVATIONS[type(module)])
            elif not isinstance(module, RESHAPES):
                return None
        linears = [m for m in plan if isinstance(m, FeedbackLinear)]
        covered = {id(p) for layer in linears for p in layer.parameters()}
        if not linears or any(id(p) not in covered for p in model.parameters()):
            return None
        return cls(plan, task, optimizer)

    @torch.no_grad()
    def __call__(self, inputs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        a = inputs.reshape(len(inputs), -1)
        saved: list[Tensor] = []
        dense = self.dense
        for index, item in enumerate(self.plan):
            if index in dense:
                _, _, bias, weight_t = dense[index]
                saved.append(a)
                a = a @ weight_t if bias is None else torch.addmm(bias, a, weight_t)
            else:
                a = item.forward(a)
                saved.append(a)
        loss, delta = self.loss(a, target)
        first = self.first
        lr = self.optimizer.param_groups[0]["lr"] if self.in_place_sgd else 0.0
        for index in range(len(self.plan) - 1, first - 1, -1):
            kept = saved[index]
            if index in dense:
                layer, weight, bias, _ = dense[index]
                # the error sent down is computed before W changes (it may be W itself under BP)
                below = delta @ layer.backward_operand() if index > first else None
                delta_t = delta.t()
                if self.in_place_sgd:
                    weight.addmm_(delta_t, kept, alpha=-lr)
                    if bias is not None:
                        bias.add_(delta.sum(0), alpha=-lr)
                else:
                    weight.grad = delta_t @ kept
                    if bias is not None:
                        bias.grad = delta.sum(0)
                if below is not None:
                    delta = below
            else:
                delta = self.plan[index].backward(delta, kept)
        if not self.in_place_sgd:
            self.optimizer.step()
        return loss, a
