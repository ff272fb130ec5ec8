"""Looking inside a trained network: pure functions over a model (and a dataset).

* :func:`weight_feedback_sample`: a layer's ``W`` entries paired with ``B``'s (subsampled), with
  their angle and correlation, for a scatter and histograms;
* :func:`first_layer_filters`: the first layer's filters as small images. For a locally connected
  layer, each filter at a grid of output positions (a mosaic per filter), which shows that the
  filters differ by position; :func:`position_similarity` puts a number on it. With
  ``minus=initial_model(...)`` they show what training changed (``W - W0``): after a short run the
  trained ``W`` is still mostly its random initial value;
* :func:`predict_classes`, :func:`confusion_matrix`, :func:`misclassified` and
  :func:`classifier_report`: the test-set confusion matrix and a gallery of wrong answers with the
  model's top guesses; :func:`reconstructions` for the autoencoder.

Locally connected weights are always read through ``layer.filters()`` (the readable
``(O, C, k, k, out_h, out_w)`` view), never through the raw ``.weight`` layout.
Nothing here imports Streamlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .layers import FeedbackConv2d, FeedbackLayer, FeedbackLinear, LocallyConnected2d, feedback_layers
from .metrics import angle_degrees
from .training import add_noise, to_float


# ---- W against B ---------------------------------------------------------------------------------
def readable_weight(layer: FeedbackLayer, which: str = "weight") -> torch.Tensor | None:
    """``W`` (``which="weight"``) or ``B`` (``"feedback"``; ``None`` under BP) in a readable shape:
    ``(O, C, k, k, out_h, out_w)`` for a locally connected layer, the parameter's own shape else."""
    if which not in ("weight", "feedback"):
        raise ValueError(f"which must be 'weight' or 'feedback', got {which!r}")
    tensor = layer.weight if which == "weight" else layer.feedback
    if tensor is None:
        return None
    if isinstance(layer, LocallyConnected2d):
        return layer.filters(tensor)
    return tensor


@dataclass
class WeightSample:
    """Paired entries of one layer's ``W`` and ``B`` (same positions), subsampled."""

    layer: str
    weight: np.ndarray
    feedback: np.ndarray | None
    total: int
    angle: float | None
    correlation: float | None


def weight_feedback_sample(layer: FeedbackLayer, name: str = "", max_points: int = 5000, seed: int = 0) -> WeightSample:
    """At most ``max_points`` entries of ``W`` and the ``B`` entries at the same positions
    (a fixed random subset for ``seed``), plus the angle between all of ``W`` and ``B`` and the
    Pearson correlation of all their entries. ``feedback``/``angle``/``correlation`` are ``None``
    under BP (no ``B``)."""
    with torch.no_grad():
        w = readable_weight(layer, "weight").detach().reshape(-1).double().cpu()
        b_t = readable_weight(layer, "feedback")
        b = b_t.detach().reshape(-1).double().cpu() if b_t is not None else None
        total = w.numel()
        if total > max_points:
            gen = torch.Generator().manual_seed(seed)
            index = torch.randperm(total, generator=gen)[:max_points].sort().values
        else:
            index = torch.arange(total)
        angle = correlation = None
        if b is not None:
            angle = angle_degrees(w, b)
            wc, bc = w - w.mean(), b - b.mean()
            denom = float(wc.norm() * bc.norm())
            correlation = float(torch.dot(wc, bc)) / denom if denom > 0 else None
            if angle is not None and not math.isfinite(angle):
                angle = None
        return WeightSample(
            layer=name, weight=w[index].float().numpy(), feedback=None if b is None else b[index].float().numpy(),
            total=total, angle=angle, correlation=correlation,
        )


# ---- first-layer filters -------------------------------------------------------------------------
def grid_positions(size: int, count: int) -> list[int]:
    """``count`` evenly spaced indices in ``range(size)``, centred in equal strips (28, 4 -> 3, 10, 17, 24)."""
    count = max(1, min(count, size))
    return [min(size - 1, max(0, math.floor((i + 0.5) * size / count))) for i in range(count)]


@dataclass
class FilterView:
    """Small images of the first layer's filters, ready for a grid of heatmaps.

    ``mosaics[i]`` is a 2-D array (NaN between tiles) with ``titles[i]``; ``hover[i]`` has one
    text per pixel. ``kind`` is ``"local"`` (one filter at several positions per mosaic),
    ``"conv"`` (shared filters) or ``"dense"`` (hidden units' input weights as images).
    """

    layer: str
    kind: str
    which: str
    mosaics: list[np.ndarray]
    titles: list[str]
    hover: list[list[list[str]]]
    description: str
    positions: list[tuple[int, int]] = field(default_factory=list)
    zmax: float = 1.0


def _tile(tiles: list[list[np.ndarray]], gap: int = 1) -> np.ndarray:
    rows, cols = len(tiles), len(tiles[0])
    th, tw = tiles[0][0].shape
    out = np.full((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap), np.nan, dtype=np.float64)
    for r in range(rows):
        for c in range(cols):
            out[r * (th + gap) : r * (th + gap) + th, c * (tw + gap) : c * (tw + gap) + tw] = tiles[r][c]
    return out


def _tile_hover(labels: list[list[str]], th: int, tw: int, gap: int = 1) -> list[list[str]]:
    rows, cols = len(labels), len(labels[0])
    height, width = rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap
    out = [["" for _ in range(width)] for _ in range(height)]
    for r in range(rows):
        for c in range(cols):
            for y in range(th):
                for x in range(tw):
                    out[r * (th + gap) + y][c * (tw + gap) + x] = f"{labels[r][c]}, pixel ({y}, {x})"
    return out


def first_layer(model: nn.Module) -> tuple[str, FeedbackLayer]:
    layers = feedback_layers(model)
    if not layers:
        raise ValueError("the model has no trainable feedback layers")
    return layers[0]


def initial_model(config: dict[str, Any]) -> nn.Module | None:
    """The network as it was before training: rebuilt from the run's config (model, dataset, rule,
    seed), since the initial forward weights depend only on the seed. ``None`` without a seed."""
    from .models import build_model

    seed = config.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return None
    try:
        return build_model(config["model"], config.get("dataset", "mnist"), config.get("rule", "bp"), seed=seed,
                           **(config.get("rule_params") or {}))
    except (KeyError, ValueError, TypeError):
        return None


def first_layer_filters(
    model: nn.Module, which: str = "weight", grid: int = 4, units: int = 16, minus: nn.Module | None = None,
) -> FilterView | None:
    """The first layer's ``W`` (or ``B``: ``which="feedback"``; ``None`` under BP) as images.

    With ``minus`` (the same architecture, e.g. :func:`initial_model`), the images show ``W`` minus
    that model's first-layer ``W`` (the change made by training).

    * locally connected: per output channel a ``grid x grid`` mosaic of its k x k filter at evenly
      spaced output positions (input channels averaged);
    * shared convolution: each k x k filter (input channels averaged);
    * dense: the input weights of the first ``units`` hidden units, as images of the input's shape.
    """
    name, layer = first_layer(model)
    tensor = readable_weight(layer, which)
    if tensor is None:
        return None
    label = "W" if which == "weight" else "B"
    if minus is not None:
        _, other = first_layer(minus)
        base = readable_weight(other, which)
        if base is None or base.shape != tensor.shape:
            raise ValueError("the reference model's first layer does not match")
        tensor = tensor.detach().cpu() - base.detach().cpu()
        label = "ΔW" if which == "weight" else "ΔB"
    t = tensor.detach().float().cpu()
    if isinstance(layer, LocallyConnected2d):
        out_h, out_w = layer.output_size
        rows, cols = grid_positions(out_h, grid), grid_positions(out_w, grid)
        k = layer.kernel_size
        mosaics, hover, titles = [], [], []
        for o in range(t.shape[0]):
            per_channel = t[o].mean(0)  # (k, k, out_h, out_w)
            tiles = [[per_channel[:, :, r, c].numpy() for c in cols] for r in rows]
            mosaics.append(_tile(tiles))
            hover.append(_tile_hover([[f"position ({r}, {c})" for c in cols] for r in rows], k, k))
            titles.append(f"{label} filter {o + 1}")
        description = (f"{name}: each panel is one of {t.shape[0]} output channels; its {grid}x{grid} tiles are "
                       f"that channel's {k}x{k} filter at output positions rows {rows} x columns {cols} of "
                       f"{out_h}x{out_w}. A shared convolution would repeat one tile; here every position has "
                       "its own filter.")
        positions = [(r, c) for r in rows for c in cols]
    elif isinstance(layer, FeedbackConv2d):
        k = layer.kernel_size
        mosaics = [t[o].mean(0).numpy().astype(np.float64) for o in range(t.shape[0])]
        hover = [[[f"pixel ({y}, {x})" for x in range(k)] for y in range(k)] for _ in mosaics]
        titles = [f"{label} filter {o + 1}" for o in range(t.shape[0])]
        description = f"{name}: {t.shape[0]} shared {k}x{k} filters (the same at every position)."
        positions = []
    elif isinstance(layer, FeedbackLinear):
        shape = tuple(getattr(model, "input_shape", ()) or ())
        if len(shape) != 3 or math.prod(shape) != t.shape[1]:
            return None
        c, h, w = shape
        count = min(units, t.shape[0])
        mosaics = [t[u].reshape(c, h, w).mean(0).numpy().astype(np.float64) for u in range(count)]
        hover = [[[f"pixel ({y}, {x})" for x in range(w)] for y in range(h)] for _ in mosaics]
        titles = [f"{label} unit {u + 1}" for u in range(count)]
        description = (f"{name}: input weights of the first {count} of {t.shape[0]} hidden units, "
                       f"shown as {h}x{w} images.")
        positions = []
    else:
        return None
    finite = np.concatenate([m[np.isfinite(m)].ravel() for m in mosaics]) if mosaics else np.zeros(1)
    zmax = float(np.abs(finite).max()) if finite.size else 1.0
    return FilterView(layer=name, kind="local" if isinstance(layer, LocallyConnected2d) else
                      ("conv" if isinstance(layer, FeedbackConv2d) else "dense"),
                      which=which, mosaics=mosaics, titles=titles, hover=hover, description=description,
                      positions=positions, zmax=zmax or 1.0)


def position_similarity(
    layer: LocallyConnected2d, which: str = "weight", minus: LocallyConnected2d | None = None,
) -> float | None:
    """Mean cosine similarity between the filters of one output channel at different positions,
    averaged over channels: 1.0 for a shared convolution, about 0 for unrelated random filters.
    With ``minus`` (the layer before training), of the change ``W - W0`` instead."""
    tensor = readable_weight(layer, which)
    if tensor is None:
        return None
    if minus is not None:
        tensor = tensor.detach().cpu() - readable_weight(minus, which).detach().cpu()
    with torch.no_grad():
        t = tensor.detach().double().cpu()
        o = t.shape[0]
        flat = t.reshape(o, -1, t.shape[-2] * t.shape[-1]).transpose(1, 2)  # (O, positions, C*k*k)
        norms = flat.norm(dim=2, keepdim=True).clamp_min(1e-12)
        unit = flat / norms
        p = unit.shape[1]
        if p < 2:
            return None
        total = unit.sum(dim=1)  # (O, D)
        pair_sum = (total * total).sum(dim=1) - (unit * unit).sum(dim=(1, 2))
        return float((pair_sum / (p * (p - 1))).mean())


# ---- predictions ---------------------------------------------------------------------------------
@torch.no_grad()
def predict_classes(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Class probabilities ``(N, classes)`` for uint8 images ``(N, C, H, W)`` (on the model's device)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        batch = to_float(images[start : start + batch_size].to(device))
        out.append(torch.softmax(model(batch), dim=1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0)


def confusion_matrix(labels: Any, predictions: Any, classes: int = 10) -> np.ndarray:
    """``matrix[true, predicted]`` counts as an int64 array of shape ``(classes, classes)``."""
    y = np.asarray(labels, dtype=np.int64).ravel()
    p = np.asarray(predictions, dtype=np.int64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and predictions differ in length ({y.size} vs {p.size})")
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y, p), 1)
    return matrix


def display_image(image: Any, scale: int = 3) -> np.ndarray:
    """A uint8 image ``(C, H, W)`` or ``(H, W)`` as an upscaled ``(H*s, W*s)`` or ``(H*s, W*s, 3)`` array."""
    array = np.asarray(image)
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))
    if array.dtype != np.uint8:
        array = np.clip(np.asarray(array, dtype=np.float64) * 255.0, 0, 255).astype(np.uint8)
    array = np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)
    return np.ascontiguousarray(array)


def misclassified(
    images: Any,
    labels: Any,
    probabilities: Any,
    limit: int = 24,
    top: int = 3,
    class_names: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The first ``limit`` wrongly classified examples, most confident mistakes first:
    ``{"index", "label", "predicted", "top": [(class, probability), ...], "image"}``."""
    probs = torch.as_tensor(np.asarray(probabilities), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if len(probs) == 0:
        return []
    pred = probs.argmax(1)
    wrong = torch.nonzero(pred != y).flatten()
    confidence = probs[wrong, pred[wrong]]
    order = wrong[torch.argsort(confidence, descending=True)][:limit]
    names = class_names or [str(i) for i in range(probs.shape[1])]
    values, classes = probs[order].topk(min(top, probs.shape[1]), dim=1)
    out = []
    for row, index in enumerate(order.tolist()):
        out.append({
            "index": index,
            "label": int(y[index]),
            "label_name": names[int(y[index])],
            "predicted": int(pred[index]),
            "top": [(names[int(c)], float(v)) for c, v in zip(classes[row], values[row])],
            "image": np.asarray(images[index].cpu() if isinstance(images, torch.Tensor) else images[index]),
        })
    return out


@dataclass
class ClassifierReport:
    """Test-set accuracy, confusion matrix and the most confident mistakes of a classifier."""

    accuracy: float
    count: int
    confusion: np.ndarray
    mistakes: list[dict[str, Any]]
    class_names: list[str]


def classifier_report(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    limit: int | None = None,
    gallery: int = 24,
    class_names: list[str] | None = None,
) -> ClassifierReport:
    """Predict the (first ``limit``) test images and summarise: accuracy (%), confusion matrix,
    the ``gallery`` most confident mistakes with the top-3 guesses."""
    if getattr(model, "task", "classify") != "classify":
        raise ValueError("a confusion matrix needs a classifier; this model is an autoencoder")
    images, labels = images[:limit], labels[:limit]
    probs = predict_classes(model, images)
    classes = probs.shape[1] if probs.ndim == 2 and probs.shape[1] else 10
    pred = probs.argmax(1) if len(probs) else torch.zeros(0, dtype=torch.int64)
    y = labels.cpu()
    matrix = confusion_matrix(y.numpy(), pred.numpy(), classes)
    accuracy = 100.0 * float((pred == y).double().mean()) if len(y) else math.nan
    names = class_names or [str(i) for i in range(classes)]
    return ClassifierReport(
        accuracy=accuracy, count=int(len(y)), confusion=matrix,
        mistakes=misclassified(images.cpu(), y, probs, limit=gallery, class_names=names), class_names=names,
    )


@torch.no_grad()
def reconstructions(model: nn.Module, images: torch.Tensor, sigma: float = 0.0, count: int = 8, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """For an autoencoder: ``count`` test images as clean, noisy (σ in pixel units) and
    reconstructed float arrays in [0, 1] (the noisy one clipped for display)."""
    device = next(model.parameters()).device
    clean = to_float(images[:count].to(device))
    gen = torch.Generator(device=device).manual_seed(seed)
    noisy = add_noise(clean, sigma, gen)
    was_training = model.training
    model.eval()
    recon = torch.sigmoid(model(noisy))
    model.train(was_training)
    return [
        {"clean": clean[i].cpu().numpy(), "noisy": noisy[i].clamp(0, 1).cpu().numpy(), "reconstruction": recon[i].cpu().numpy()}
        for i in range(len(clean))
    ]
