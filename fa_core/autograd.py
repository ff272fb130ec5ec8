"""The backward functions shared by every rule: one autograd function per layer kind.

Each function takes the forward ``weight`` and a backward ``operand`` (the rule's choice: ``W``
for backpropagation, ``B`` for feedback alignment). In the backward pass

* ``grad_input  = operand^T . grad_output``  (the error sent to the layer below), and
* ``grad_weight = grad_output (outer) input`` (the local update, the same for every rule).

With ``operand is weight`` each function equals PyTorch's own layer (tested).

The functions use the classic ``forward(ctx, ...)`` form: PyTorch binds the arguments of the
``forward`` + ``setup_context`` form through :mod:`inspect` on every call, which costs more than
a small layer's whole forward pass on a CPU.

The locally connected layer works in a *batch-last* layout: its patches are an
``(L, C*k*k, N)`` tensor (``L`` output positions, batch innermost) and its per-position products
are ``bmm`` calls whose matrices are ``N`` columns wide. Copying an ``(N, C, H, W)`` input into
``(C, H, W, N)`` order makes every patch entry a contiguous row of ``N`` values, so extracting
the patches is one row gather (``index_select``) and summing their gradients back onto the input
one row scatter-add (``index_add_``) over a cached row table; the naive alternative (a copy of the input per output channel) is the
reference in :mod:`fa_core.bench`.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F


class DenseFeedback(torch.autograd.Function):
    """``y = x W^T + b`` with ``dL/dx = dL/dy . M`` where ``M`` is the backward operand."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, operand: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(x, operand)
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

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
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        operand: torch.Tensor,
        stride: tuple[int, int],
        padding: tuple[int, int],
    ) -> torch.Tensor:
        ctx.save_for_backward(x, operand)
        ctx.has_bias = bias is not None
        ctx.stride = stride
        ctx.padding = padding
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):  # type: ignore[override]
        x, operand = ctx.saved_tensors
        common = dict(
            stride=list(ctx.stride),
            padding=list(ctx.padding),
            dilation=[1, 1],
            transposed=False,
            output_padding=[0, 0],
            groups=1,
        )
        bias_sizes = [operand.shape[0]] if ctx.has_bias else None
        # One call for all three gradients, with the operand in the weight's place: the weight
        # enters only the input gradient (the weight gradient is grad_out correlated with x), so
        # FA costs exactly what BP costs (two calls cost ~7% more on a CPU).
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out, x, operand, bias_sizes, **common,
            output_mask=[ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]],
        )
        return grad_x, grad_w, grad_b, None, None, None


@functools.lru_cache(maxsize=64)
def patch_rows(
    channels: int, height: int, width: int, kernel_size: int, stride: int, padding: int, device: torch.device
) -> torch.Tensor:
    """For every patch entry, the row of the padded batch-last input it reads.

    The padded input is viewed as a ``(C * H_pad * W_pad, N)`` matrix; entry ``(l, (c, a, b))`` of
    the patches (``l = i * out_w + j``) reads row ``(c, s*i + a, s*j + b)``. Returned flat, in
    ``(L, C*k*k)`` order, and cached per geometry.
    """
    rows = torch.arange(channels * (height + 2 * padding) * (width + 2 * padding), device=device)
    windows = rows.view(channels, height + 2 * padding, width + 2 * padding)
    windows = windows.unfold(1, kernel_size, stride).unfold(2, kernel_size, stride)
    return windows.permute(1, 2, 0, 3, 4).reshape(-1)


def local_patches(x: torch.Tensor, kernel_size: int, stride: int, padding: int) -> torch.Tensor:
    """Patches of ``x`` (N, C, H, W) as one contiguous batch-last (L, C*k*k, N) tensor.

    ``P[l, (c, a, b), n] = x_pad[n, c, s*i + a, s*j + b]`` for output position ``l = i * out_w + j``
    (row-major), patch entries ordered (channel, row, column) as
    :func:`torch.nn.functional.unfold` orders them. One copy into the padded ``(C, H, W, N)``
    layout, then one row gather (:func:`patch_rows`) of contiguous ``N``-value rows.
    """
    n, c, h, w = x.shape
    padded = x.new_zeros(c, h + 2 * padding, w + 2 * padding, n)
    padded[:, padding : padding + h, padding : padding + w, :] = x.permute(1, 2, 3, 0)
    rows = patch_rows(c, h, w, kernel_size, stride, padding, x.device)
    return padded.view(-1, n).index_select(0, rows).view(-1, c * kernel_size * kernel_size, n)


def fold_local_patches(
    grad_patches: torch.Tensor,
    input_shape: tuple[int, int, int, int],
    kernel_size: int,
    stride: int,
    padding: int,
) -> torch.Tensor:
    """Adjoint of :func:`local_patches`: ``dL/dx[n, c, y, x] = sum of dL/dP`` over every patch
    entry that reads input pixel ``(c, y, x)``, returned as an (N, C, H, W) view.

    One ``index_add_`` of the ``(L * C*k*k, N)`` rows onto the padded ``(C * H_pad * W_pad, N)``
    matrix (the rows of :func:`patch_rows`), then the padding is cut off.
    """
    n, c, h, w = input_shape
    rows = patch_rows(c, h, w, kernel_size, stride, padding, grad_patches.device)
    padded = grad_patches.new_zeros(c * (h + 2 * padding) * (w + 2 * padding), n)
    padded.index_add_(0, rows, grad_patches.view(-1, n))
    padded = padded.view(c, h + 2 * padding, w + 2 * padding, n)
    return padded[:, padding : padding + h, padding : padding + w, :].permute(3, 0, 1, 2)


class LocalFeedback(torch.autograd.Function):
    """Locally connected layer: ``y[n, o, l] = sum_i W[l, i, o] P[l, i, n] + b[l, o]``.

    ``P`` (:func:`local_patches`) holds the input patch at output position ``l``; every position
    has its own filter ``W[l]`` (``C*k*k x O``). Per position, batched with ``bmm``:

    * forward ``Y[l] = W[l]^T P[l] (+ b[l])``, an ``O x N`` block;
    * ``dL/dP[l] = M[l] . dL/dY[l]`` (then summed back onto the input by
      :func:`fold_local_patches`);
    * ``dL/dW[l] = P[l] . dL/dY[l]^T`` and ``dL/db[l] = sum_n dL/dY[l]``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        operand: torch.Tensor,
        kernel_size: int,
        stride: int,
        padding: int,
        out_size: tuple[int, int],
    ) -> torch.Tensor:
        patches = local_patches(x, kernel_size, stride, padding)
        weight_t = weight.transpose(1, 2)
        if bias is None:
            out = torch.bmm(weight_t, patches)
        else:
            out = torch.baddbmm(bias.unsqueeze(2), weight_t, patches)
        ctx.save_for_backward(patches, operand)
        ctx.has_bias = bias is not None
        ctx.geometry = (tuple(x.shape), kernel_size, stride, padding)
        n, o = x.shape[0], weight.shape[2]
        return out.permute(2, 0, 1).contiguous().view(n, *out_size, o).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):  # type: ignore[override]
        patches, operand = ctx.saved_tensors
        input_shape, kernel_size, stride, padding = ctx.geometry
        grad = grad_out.permute(2, 3, 1, 0).reshape(-1, grad_out.shape[1], grad_out.shape[0])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_patches = torch.bmm(operand, grad)
            grad_x = fold_local_patches(grad_patches, input_shape, kernel_size, stride, padding)
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(patches, grad.transpose(1, 2))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(2)
        return grad_x, grad_w, grad_b, None, None, None, None, None
