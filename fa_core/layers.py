"""Trainable layers whose backward signal follows a learning rule.

Every layer exposes ``.weight``, ``.bias`` and ``.feedback`` (the fixed ``B``, same shape as
``.weight``; ``None`` under backpropagation). ``B`` is a buffer: saved in the state dict, moved by
``.to()``, never in ``parameters()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .autograd import ConvFeedback, DenseFeedback, LocalFeedback
from .rules import FeedbackInit, LearningRule, get_rule


def kaiming_uniform_init(a: float) -> FeedbackInit:
    """``U(-b, b)`` with ``b = gain(a) * sqrt(3 / fan_in)``, gain = sqrt(2 / (1 + a^2)).

    ``a = sqrt(5)`` is PyTorch's default for Linear/Conv2d weights: ``b = 1 / sqrt(fan_in)``.
    """

    def init(tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        fan_in = tensor[0].numel()
        bound = math.sqrt(2.0 / (1.0 + a * a)) * math.sqrt(3.0 / fan_in)
        with torch.no_grad():
            tensor.uniform_(-bound, bound, generator=generator)

    return init


def uniform_init(bound: float) -> FeedbackInit:
    """``U(-bound, bound)``."""

    def init(tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        with torch.no_grad():
            tensor.uniform_(-bound, bound, generator=generator)

    return init


class FeedbackLayer(nn.Module):
    """Base of the rule-aware layers: holds the rule, ``B`` and the backward-operand choice."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    feedback: torch.Tensor | None

    def _setup_feedback(
        self,
        rule: str | LearningRule,
        init: FeedbackInit,
        generator: torch.Generator | None,
    ) -> None:
        self.rule = get_rule(rule)
        self.feedback_init = init
        self.use_true_gradient = False
        self.register_buffer("feedback", self.rule.make_feedback(self.weight.detach(), init, generator))

    def backward_operand(self) -> torch.Tensor:
        """``W`` under backpropagation (or while measuring the true gradient), else ``B``."""
        if self.use_true_gradient:
            return self.weight
        return self.rule.backward_operand(self.weight, self.feedback)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rule={self.rule.display_name()}"


class FeedbackLinear(FeedbackLayer):
    """Dense layer ``y = x W^T + b`` with ``delta_x = M^T delta_y`` (``M`` = ``W`` or ``B``).

    Weight and bias are drawn as :class:`torch.nn.Linear` draws them (``U(+-1/sqrt(fan_in))``);
    ``B`` is drawn the same way unless ``feedback_init`` says otherwise.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        rule: str | LearningRule = "bp",
        feedback_init: FeedbackInit | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        kaiming_uniform_init(math.sqrt(5))(self.weight, None)
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        if self.bias is not None:
            uniform_init(1.0 / math.sqrt(in_features))(self.bias, None)
        self._setup_feedback(rule, feedback_init or kaiming_uniform_init(math.sqrt(5)), generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return DenseFeedback.apply(x, self.weight, self.bias, self.backward_operand())

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rule={self.rule.display_name()}"


class FeedbackConv2d(FeedbackLayer):
    """Shared-weight convolution whose input gradient is the transposed convolution with ``M``.

    Initialised as :class:`torch.nn.Conv2d`; ``B`` (same shape as the kernel) drawn likewise.
    Under FA this is "FA on shared filters", to compare with :class:`LocallyConnected2d`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        rule: str | LearningRule = "bp",
        feedback_init: FeedbackInit | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = (stride, stride)
        self.padding = (padding, padding)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        kaiming_uniform_init(math.sqrt(5))(self.weight, None)
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        if self.bias is not None:
            uniform_init(1.0 / math.sqrt(in_channels * kernel_size * kernel_size))(self.bias, None)
        self._setup_feedback(rule, feedback_init or kaiming_uniform_init(math.sqrt(5)), generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ConvFeedback.apply(
            x, self.weight, self.bias, self.backward_operand(), self.stride, self.padding
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride[0]}, padding={self.padding[0]}, rule={self.rule.display_name()}"
        )


class LocallyConnected2d(FeedbackLayer):
    """Convolution-shaped layer without weight sharing: each output position has its own filter.

    ``weight`` has shape ``(positions, in_channels * k * k, out_channels)`` with positions in
    row-major order over the ``out_h x out_w`` output grid and patch entries ordered
    (channel, row, column); :meth:`filters` gives the readable ``(out_channels, in_channels, k, k,
    out_h, out_w)`` view. ``bias`` has shape ``(positions, out_channels)`` and is trainable.
    Initialisation follows Konishi & Miura's code: ``W`` and ``B`` from ``U(-1/k, 1/k)``, bias 0.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        input_size: int | tuple[int, int],
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        rule: str | LearningRule = "bp",
        feedback_init: FeedbackInit | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        in_h, in_w = (input_size, input_size) if isinstance(input_size, int) else input_size
        out_h = (in_h + 2 * padding - kernel_size) // stride + 1
        out_w = (in_w + 2 * padding - kernel_size) // stride + 1
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"LocallyConnected2d: a {kernel_size}x{kernel_size} kernel with padding {padding} "
                f"does not fit a {in_h}x{in_w} input"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.input_size = (in_h, in_w)
        self.output_size = (out_h, out_w)
        self.stride = stride
        self.padding = padding
        positions = out_h * out_w
        patch = in_channels * kernel_size * kernel_size
        init = uniform_init(1.0 / kernel_size)
        self.weight = nn.Parameter(torch.empty(positions, patch, out_channels))
        init(self.weight, None)
        self.bias = nn.Parameter(torch.zeros(positions, out_channels)) if bias else None
        self._setup_feedback(rule, feedback_init or init, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != (self.in_channels, *self.input_size):
            raise ValueError(
                f"LocallyConnected2d expects input (N, {self.in_channels}, {self.input_size[0]}, "
                f"{self.input_size[1]}), got {tuple(x.shape)}"
            )
        return LocalFeedback.apply(
            x, self.weight, self.bias, self.backward_operand(),
            self.kernel_size, self.stride, self.padding, self.output_size,
        )

    def filters(self, tensor: torch.Tensor | None = None) -> torch.Tensor:
        """``weight`` (or a tensor of its shape, e.g. ``feedback``) as (O, C, k, k, out_h, out_w)."""
        t = self.weight if tensor is None else tensor
        k = self.kernel_size
        return t.reshape(*self.output_size, self.in_channels, k, k, self.out_channels).permute(
            5, 2, 3, 4, 0, 1
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"input_size={self.input_size}, padding={self.padding}, rule={self.rule.display_name()}"
        )


def feedback_layers(model: nn.Module) -> list[tuple[str, FeedbackLayer]]:
    """The rule-aware layers of ``model`` in forward (registration) order, with their names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, FeedbackLayer)]


@contextmanager
def true_gradient(model: nn.Module) -> Iterator[None]:
    """Within the block every layer sends the backpropagation error (operand ``W``)."""
    layers = [layer for _, layer in feedback_layers(model)]
    previous = [layer.use_true_gradient for layer in layers]
    for layer in layers:
        layer.use_true_gradient = True
    try:
        yield
    finally:
        for layer, flag in zip(layers, previous):
            layer.use_true_gradient = flag
