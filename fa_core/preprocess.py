"""Drawings and photos of digits to the 28x28 images the MNIST models see, as MNIST was made.

LeCun et al. made MNIST by fitting each digit's ink into a 20x20 box (keeping the aspect ratio,
with anti-aliasing, so the result has grey levels) and pasting it into a 28x28 field so that the
ink's centre of mass sits at the centre. :func:`preprocess_drawing` does the same with a canvas
drawing or an uploaded image:

1. ink: the alpha channel when the image has transparency (a canvas drawing: opaque strokes on a
   transparent background), else the brightness, inverted when the background is light (dark ink
   on paper) and stretched between the background level and the darkest ink, so a grey photo of
   paper becomes black with white strokes;
2. crop to the ink's bounding box;
3. resize so the longer side is 20 px (Lanczos on a float image; anti-aliased);
4. paste into a 28x28 field with the centre of mass at the centre (whole-pixel shift, clamped so
   nothing is cut off).

:func:`read_image_file` opens uploads safely (size limits, no formats beyond what Pillow decodes
as images, EXIF orientation applied). :func:`robustness_study` measures how much the
preprocessing helps a classifier on MNIST test digits that were shifted, scaled and thickened.
Nothing here imports Streamlit.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

FIELD = 28
"""Side of the image the models see."""
BOX = 20
"""Side of the box the digit's longer side is fitted to (MNIST's 20x20)."""
INK_THRESHOLD = 0.2
"""Ink level (0..1) above which a pixel counts when finding the digit's bounding box."""
MIN_CONTRAST = 40
"""Brightness range (0..255) below which an opaque image counts as blank."""
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000
"""Uploads above this many pixels are refused before decoding (decompression bombs)."""
WORK_SIDE = 512
"""Large photos are reduced to this longer side before the ink is found (speed; ample detail)."""


class ImageError(ValueError):
    """An uploaded file that is not a usable image; the message says why."""


def _as_array(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"the image is empty (shape {arr.shape})")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr.astype(np.float64)), 0, 255).astype(np.uint8)
    return arr


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an RGB array, in 0..255 (float)."""
    rgb = rgb.astype(np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _border(values: np.ndarray) -> np.ndarray:
    h, w = values.shape
    band = max(1, min(h, w) // 20)
    return np.concatenate(
        [values[:band].ravel(), values[-band:].ravel(), values[:, :band].ravel(), values[:, -band:].ravel()]
    )


def ink_map(image: Any) -> np.ndarray | None:
    """Ink strength in [0, 1] per pixel (float32 HxW), or ``None`` when there is no ink.

    With an alpha channel that is not fully opaque, the ink is the alpha channel (the canvas
    draws opaque strokes on a transparent background; the stroke colour does not matter). Opaque
    images use brightness: light backgrounds (judged on the image border) are inverted, then the
    values are stretched from the background level (median) to the strongest ink (99.5th
    percentile), with a dead zone of a quarter of that range to drop paper texture and shadows.
    """
    arr = _as_array(image)
    if arr.ndim == 3 and arr.shape[2] == 4:
        alpha = arr[:, :, 3]
        if alpha.min() < 255:
            ink = alpha.astype(np.float32) / 255.0
            return ink if float(ink.max()) >= INK_THRESHOLD else None
        arr = arr[:, :, :3]
    grey = _luminance(arr) if arr.ndim == 3 else arr.astype(np.float32)
    if float(np.median(_border(grey))) > 127.5:
        grey = 255.0 - grey
    background = float(np.median(grey))
    peak = float(np.percentile(grey, 99.5)) if grey.size >= 400 else float(grey.max())
    peak = max(peak, background)
    if peak - background < MIN_CONTRAST:
        peak = float(grey.max())
        if peak - background < MIN_CONTRAST:
            return None
    low = background + 0.25 * (peak - background)
    ink = np.clip((grey - low) / (peak - low), 0.0, 1.0).astype(np.float32)
    return ink if float(ink.max()) >= INK_THRESHOLD else None


def _resize_float(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Anti-aliased resize of a float image to ``size`` = (width, height)."""
    img = Image.fromarray(values.astype(np.float32), mode="F")
    out = np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def fit_to_field(ink: np.ndarray, box: int = BOX, field: int = FIELD) -> np.ndarray | None:
    """Crop ``ink`` (HxW floats in [0, 1]) to the digit, fit it into ``box``, centre by mass in ``field``."""
    mask = ink >= INK_THRESHOLD
    if not mask.any():
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = box / max(h, w)
    new_w = min(box, max(1, int(round(w * scale))))
    new_h = min(box, max(1, int(round(h * scale))))
    patch = _resize_float(crop, (new_w, new_h))
    mass = float(patch.sum())
    if mass <= 0:
        return None
    ys, xs = np.indices(patch.shape)
    cy = float((ys * patch).sum()) / mass
    cx = float((xs * patch).sum()) / mass
    centre = (field - 1) / 2.0
    top = int(np.clip(round(centre - cy), 0, field - new_h))
    left = int(np.clip(round(centre - cx), 0, field - new_w))
    out = np.zeros((field, field), dtype=np.float32)
    out[top : top + new_h, left : left + new_w] = patch
    return out


def preprocess_drawing(rgba: Any) -> torch.Tensor | None:
    """A drawing or photo of a digit as the (1, 28, 28) float tensor in [0, 1] MNIST models expect.

    ``rgba`` is a numpy uint8 image, HxWx4 (a canvas: ink in the alpha channel), HxWx3 or HxW
    (a photo or scan: ink from brightness; dark ink on light paper is inverted). Returns ``None``
    for an empty drawing. See the module docstring for the steps (MNIST's own recipe).
    """
    ink = ink_map(rgba)
    if ink is None:
        return None
    field = fit_to_field(ink)
    if field is None:
        return None
    return torch.from_numpy(field).unsqueeze(0)


def naive_resize(rgba: Any) -> torch.Tensor | None:
    """The whole image squeezed to 28x28 with the same ink extraction: no crop, no centring.

    What a model sees "without preprocessing"; the baseline of :func:`robustness_study`.
    """
    ink = ink_map(rgba)
    if ink is None:
        return None
    return torch.from_numpy(_resize_float(ink, (FIELD, FIELD))).unsqueeze(0)


def read_image_file(
    data: bytes,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
    work_side: int = WORK_SIDE,
) -> np.ndarray:
    """Decode an uploaded image (PNG, JPEG, ...) to an RGBA uint8 array, safely.

    Refuses files over ``max_bytes``, images over ``max_pixels`` (checked from the header, before
    the pixels are decoded) and anything Pillow cannot read as an image, with an
    :class:`ImageError` saying which. Applies the EXIF orientation of phone photos and reduces
    large images to ``work_side`` pixels on the longer side.
    """
    if not data:
        raise ImageError("the file is empty")
    if len(data) > max_bytes:
        raise ImageError(f"the file is {len(data) / 1e6:.1f} MB; images up to {max_bytes / 1e6:.0f} MB are accepted")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(
                    f"the image is {width}x{height} pixels; at most {max_pixels / 1e6:.0f} megapixels are accepted"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("P", "LA", "PA") or "transparency" in img.info:
                img = img.convert("RGBA")
            elif img.mode not in ("RGB", "RGBA", "L"):
                img = img.convert("RGB")
            if max(img.size) > work_side:
                img.thumbnail((work_side, work_side), Image.Resampling.LANCZOS)
            return np.asarray(img.convert("RGBA") if img.mode == "RGBA" else img.convert("RGB"))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"the image is too large to decode safely: {err}") from None
    except UnidentifiedImageError:
        raise ImageError("this file is not an image Pillow can read (try PNG or JPEG)") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"the image could not be decoded (truncated or corrupt?): {err}") from None


# --- robustness study: MNIST test digits drawn "like a user would" -------------------------


@dataclass(frozen=True)
class Distortion:
    """How one test digit is re-drawn on a larger canvas: scale, position and stroke thickening."""

    canvas: int
    scale: float
    thicken: int
    left: int
    top: int


def random_distortions(
    n: int,
    seed: int = 0,
    canvas: int = 112,
    scale_range: tuple[float, float] = (0.35, 1.0),
    thicken_max: int = 3,
) -> list[Distortion]:
    """``n`` random distortions: the digit's 28x28 frame is drawn ``scale`` x canvas wide, at a random
    position fully inside the canvas, with strokes dilated ``thicken`` times by a 3x3 max filter
    (at canvas resolution)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        scale = float(rng.uniform(*scale_range))
        side = max(FIELD, int(round(scale * canvas)))
        left = int(rng.integers(0, canvas - side + 1))
        top = int(rng.integers(0, canvas - side + 1))
        out.append(Distortion(canvas, scale, int(rng.integers(0, thicken_max + 1)), left, top))
    return out


def distort_digit(digit: np.ndarray, d: Distortion) -> np.ndarray:
    """Draw a 28x28 uint8 digit into a ``d.canvas`` square RGBA image (ink in alpha), as :class:`Distortion` says."""
    side = max(FIELD, int(round(d.scale * d.canvas)))
    img = Image.fromarray(np.asarray(digit, dtype=np.uint8)).resize((side, side), Image.Resampling.BILINEAR)
    for _ in range(d.thicken):
        img = img.filter(ImageFilter.MaxFilter(3))
    alpha = np.zeros((d.canvas, d.canvas), dtype=np.uint8)
    alpha[d.top : d.top + side, d.left : d.left + side] = np.asarray(img)
    rgba = np.zeros((d.canvas, d.canvas, 4), dtype=np.uint8)
    rgba[:, :, 3] = alpha
    return rgba


def _accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        pred = torch.cat([model(images[i : i + 500]).argmax(1) for i in range(0, len(images), 500)])
    return 100.0 * float((pred == labels).float().mean())


def robustness_study(
    models: dict[str, torch.nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    n: int = 2000,
    seed: int = 0,
    **distortion_args: Any,
) -> dict[str, Any]:
    """Accuracy of each classifier on ``n`` MNIST test digits: as they are, distorted and squeezed
    to 28x28 (no preprocessing), and distorted then put through :func:`preprocess_drawing`; also
    the clean digits through the preprocessing (what it costs on digits that need none).

    ``images``: uint8 (N, 1, 28, 28); ``labels``: (N,). Returns ``{"n", "seed", "distortion",
    "results": {name: {"clean", "clean_preprocessed", "distorted_raw", "distorted_preprocessed"}}}``.
    """
    n = min(n, len(images))
    gen = np.random.default_rng(seed)
    idx = np.sort(gen.choice(len(images), size=n, replace=False))
    digits = images[idx, 0].numpy()
    y = labels[idx].cpu()
    distortions = random_distortions(n, seed=seed, **distortion_args)
    clean, clean_pre, raw, pre = [], [], [], []
    for digit, d in zip(digits, distortions):
        canvas = distort_digit(digit, d)
        clean.append(torch.from_numpy(digit.astype(np.float32) / 255.0).unsqueeze(0))
        clean_pre.append(_or_blank(preprocess_drawing(np.dstack([np.zeros((FIELD, FIELD, 3), np.uint8), digit]))))
        raw.append(_or_blank(naive_resize(canvas)))
        pre.append(_or_blank(preprocess_drawing(canvas)))
    sets = {
        "clean": torch.stack(clean),
        "clean_preprocessed": torch.stack(clean_pre),
        "distorted_raw": torch.stack(raw),
        "distorted_preprocessed": torch.stack(pre),
    }
    results = {
        name: {key: _accuracy(model.eval(), batch, y) for key, batch in sets.items()}
        for name, model in models.items()
    }
    first = distortions[0]
    return {
        "n": n,
        "seed": seed,
        "distortion": {
            "canvas": first.canvas,
            "scale_range": list(distortion_args.get("scale_range", (0.35, 1.0))),
            "thicken_max": distortion_args.get("thicken_max", 3),
        },
        "results": results,
    }


def _or_blank(t: torch.Tensor | None) -> torch.Tensor:
    return t if t is not None else torch.zeros(1, FIELD, FIELD)


def centre_of_mass(image: torch.Tensor | np.ndarray) -> tuple[float, float]:
    """(row, column) centre of mass of a 2-D (or 1xHxW) image; the field centre if it is blank."""
    arr = np.asarray(image, dtype=np.float64).reshape(np.asarray(image).shape[-2:])
    mass = arr.sum()
    if mass <= 0:
        return ((arr.shape[0] - 1) / 2.0, (arr.shape[1] - 1) / 2.0)
    ys, xs = np.indices(arr.shape)
    return float((ys * arr).sum() / mass), float((xs * arr).sum() / mass)


def ink_bbox(image: torch.Tensor | np.ndarray, threshold: float = 0.05) -> tuple[int, int] | None:
    """(height, width) of the bounding box of pixels above ``threshold``; ``None`` if there are none."""
    arr = np.asarray(image, dtype=np.float64).reshape(np.asarray(image).shape[-2:])
    mask = arr > threshold
    if not mask.any():
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


__all__: Sequence[str] = (
    "BOX",
    "FIELD",
    "Distortion",
    "ImageError",
    "centre_of_mass",
    "distort_digit",
    "fit_to_field",
    "ink_bbox",
    "ink_map",
    "naive_resize",
    "preprocess_drawing",
    "random_distortions",
    "read_image_file",
    "robustness_study",
)
