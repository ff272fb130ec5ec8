"""The backward functions shared by every rule: one autograd function per layer kind.

Each function takes the forward ``weight`` and a backward ``operand`` (the rule's choice: ``W``
for backpropagation, ``B`` for feedback alignment). In the backward pass

* ``grad_input  = operand^T . grad_output``  (the error sent to the layer below), and
* ``grad_weight = grad_output (outer) input`` (the local update, the same for every rule).

With ``operand is weight`` each function equals PyTorch's own layer (tested).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class DenseFeedback(torch.autograd.Function):
    """``y = x W^T + b`` with ``dL/dx = dL/dy . M`` where ``M`` is the backward operand."""

    @staticmethod
    def forward(
        x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, operand: torch.Tensor
    ) -> torch.Tensor:
        return F.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, weight, bias, operand = inputs
        ctx.save_for_backward(x, operand)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):  # type: ignore[override]
        x, operand = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ operand
        flat_grad = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[1]:
            grad_w = flat_grad.t() @ x.reshape(-1, x.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = flat_grad.sum(0)
        return grad_x, grad_w, grad_b, None


class ConvFeedback(torch.autograd.Function):
    """Shared-weight 2-D convolution whose input gradient is a transposed convolution with ``M``."""

    @staticmethod
    def forward(
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        operand: torch.Tensor,
        stride: tuple[int, int],
        padding: tuple[int, int],
    ) -> torch.Tensor:
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, weight, bias, operand, stride, padding = inputs
        ctx.save_for_backward(x, weight, operand)
        ctx.has_bias = bias is not None
        ctx.stride = stride
        ctx.padding = padding

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight, operand = ctx.saved_tensors
        common = dict(
            stride=list(ctx.stride),
            padding=list(ctx.padding),
            dilation=[1, 1],
            transposed=False,
            output_padding=[0, 0],
            groups=1,
        )
        bias_sizes = [weight.shape[0]] if ctx.has_bias else None
        want_x = ctx.needs_input_grad[0]
        want_w = ctx.needs_input_grad[1]
        want_b = ctx.has_bias and ctx.needs_input_grad[2]
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out, x, weight, bias_sizes, **common,
            output_mask=[want_x and operand is weight, want_w, want_b],
        )
        if want_x and operand is not weight:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, operand, None, **common, output_mask=[True, False, False]
            )[0]
        return grad_x, grad_w, grad_b, None, None, None


def extract_patches(x: torch.Tensor, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """Patches of ``x`` (N, C, H, W) as one contiguous (L, N, C*k*k) tensor, L = out_h * out_w.

    Patch entries are ordered (channel, row, column), as :func:`torch.nn.functional.unfold` orders them.
    """
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    windows = x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride)
    n, c, out_h, out_w, k, _ = windows.shape
    return windows.permute(2, 3, 0, 1, 4, 5).reshape(out_h * out_w, n, c * k * k)


def fold_patches(
    patches: torch.Tensor,
    input_shape: tuple[int, int, int, int],
    out_size: tuple[int, int],
    kernel_size: int,
    stride: int,
    padding: int,
) -> torch.Tensor:
    """Adjoint of :func:`extract_patches`: sum (L, N, C*k*k) patch gradients back onto the input."""
    n, c, h, w = input_shape
    out_h, out_w = out_size
    k = kernel_size
    grid = patches.reshape(out_h, out_w, n, c, k, k).permute(2, 3, 4, 5, 0, 1)
    padded = patches.new_zeros(n, c, h + 2 * padding, w + 2 * padding)
    row_span = stride * (out_h - 1) + 1
    col_span = stride * (out_w - 1) + 1
    for i in range(k):
        for j in range(k):
            padded[:, :, i : i + row_span : stride, j : j + col_span : stride] += grid[:, :, i, j]
    if padding:
        padded = padded[:, :, padding : padding + h, padding : padding + w]
    return padded


class LocalFeedback(torch.autograd.Function):
    """Locally connected layer: ``y[n, o, l] = sum_i W[l, i, o] P[l, n, i] + b[l, o]``.

    ``P`` holds the input patches at output position ``l``; every position has its own filter.
    Backward: ``dL/dP[l] = dL/dy[l] . M[l]^T`` (then summed back onto the input) and
    ``dL/dW[l] = P[l]^T . dL/dy[l]``, batched over positions with ``bmm``.
    """

    @staticmethod
    def forward(
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        operand: torch.Tensor,
        kernel_size: int,
        stride: int,
        padding: int,
        out_size: tuple[int, int],
    ) -> torch.Tensor:
        patches = extract_patches(x, kernel_size, stride, padding)
        if bias is None:
            out = torch.bmm(patches, weight)
        else:
            out = torch.baddbmm(bias.unsqueeze(1), patches, weight)
        return out.permute(1, 2, 0).unflatten(2, out_size)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, weight, bias, operand, kernel_size, stride, padding, out_size = inputs
        ctx.save_for_backward(x, operand)
        ctx.has_bias = bias is not None
        ctx.geometry = (kernel_size, stride, padding, out_size)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):  # type: ignore[override]
        x, operand = ctx.saved_tensors
        kernel_size, stride, padding, out_size = ctx.geometry
        grad = grad_out.flatten(2).permute(2, 0, 1).contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_patches = torch.bmm(grad, operand.transpose(1, 2))
            grad_x = fold_patches(grad_patches, tuple(x.shape), out_size, kernel_size, stride, padding)
        if ctx.needs_input_grad[1]:
            patches = extract_patches(x, kernel_size, stride, padding)
            grad_w = torch.bmm(patches.transpose(1, 2), grad)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(1)
        return grad_x, grad_w, grad_b, None, None, None, None, None
