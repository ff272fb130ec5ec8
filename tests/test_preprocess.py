"""Drawings and photos to MNIST-style 28x28 images: empty, off-centre, tiny, huge, inverted inputs."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from fa_core import preprocess_drawing
from fa_core.preprocess import (
    ImageError,
    centre_of_mass,
    distort_digit,
    ink_bbox,
    naive_resize,
    random_distortions,
    read_image_file,
    robustness_study,
)

THREE = [(0.2, 0.15), (0.7, 0.1), (0.75, 0.35), (0.45, 0.5), (0.8, 0.65), (0.7, 0.9), (0.2, 0.85)]


def canvas_drawing(size: int = 280, box: tuple[float, float, float, float] = (0.1, 0.1, 0.9, 0.9),
                   width: int = 20, points=THREE) -> np.ndarray:
    """A '3' drawn like the canvas draws it: opaque black strokes on a transparent background."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    x0, y0, x1, y1 = (v * size for v in box)
    pts = [(x0 + px * (x1 - x0), y0 + py * (y1 - y0)) for px, py in points]
    ImageDraw.Draw(img).line(pts, fill=(0, 0, 0, 255), width=width, joint="curve")
    return np.asarray(img)


def assert_mnist_like(x: torch.Tensor) -> None:
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and float(x.max()) > 0.9
    cy, cx = centre_of_mass(x)
    assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5
    h, w = ink_bbox(x, threshold=0.0)
    assert max(h, w) in (20, 21)  # the 20-px box (+1 for a Lanczos fringe)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((280, 280, 4), np.uint8),  # empty canvas, transparent
        np.full((280, 280, 4), 255, np.uint8),  # empty canvas, opaque white background
        np.full((50, 60, 3), 200, np.uint8),  # a blank grey photo
        np.zeros((28, 28), np.uint8),  # a black greyscale image
    ],
    ids=["transparent", "white", "grey-photo", "black"],
)
def test_empty_drawings_give_none(image: np.ndarray) -> None:
    assert preprocess_drawing(image) is None


def test_canvas_drawing_is_fitted_and_centred() -> None:
    x = preprocess_drawing(canvas_drawing())
    assert x is not None
    assert_mnist_like(x)


def test_off_centre_drawing_is_recentred() -> None:
    corner = canvas_drawing(box=(0.02, 0.6, 0.3, 0.98))
    centre = canvas_drawing(box=(0.36, 0.31, 0.64, 0.69))
    a, b = preprocess_drawing(corner), preprocess_drawing(centre)
    assert a is not None and b is not None
    assert_mnist_like(a)
    # where the digit was drawn does not matter
    assert float((a - b).abs().mean()) < 0.02


def test_tiny_drawing_is_scaled_up() -> None:
    tiny = canvas_drawing(box=(0.5, 0.5, 0.53, 0.56), width=2)
    x = preprocess_drawing(tiny)
    assert x is not None
    assert_mnist_like(x)


def test_single_dot_gives_a_blob_not_an_error() -> None:
    img = np.zeros((100, 100, 4), np.uint8)
    img[10, 90, 3] = 255
    x = preprocess_drawing(img)
    assert x is not None and x.shape == (1, 28, 28)
    cy, cx = centre_of_mass(x)
    assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5


def test_huge_drawing() -> None:
    big = canvas_drawing(size=2000, width=140)
    x = preprocess_drawing(big)
    assert x is not None
    assert_mnist_like(x)
    small = preprocess_drawing(canvas_drawing())
    assert float((x - small).abs().mean()) < 0.03


def test_aspect_ratio_is_kept() -> None:
    img = np.zeros((300, 300, 4), np.uint8)
    img[50:250, 140:180, 3] = 255  # a 200 x 40 bar: a "1"
    x = preprocess_drawing(img)
    assert x is not None
    h, w = ink_bbox(x, threshold=0.5)
    assert h == 20 and 3 <= w <= 5


def test_dark_ink_on_light_paper_is_inverted() -> None:
    alpha = canvas_drawing()[:, :, 3]
    paper = np.stack([255 - alpha * 0.8] * 3, axis=-1).astype(np.uint8)  # light paper, dark ink
    x = preprocess_drawing(paper)
    assert x is not None
    assert_mnist_like(x)
    ref = preprocess_drawing(canvas_drawing())
    assert float((x - ref).abs().mean()) < 0.03


def test_light_ink_on_dark_background_is_not_inverted() -> None:
    alpha = canvas_drawing()[:, :, 3]
    chalk = np.stack([alpha] * 3, axis=-1)  # white strokes on black, opaque
    x = preprocess_drawing(chalk)
    ref = preprocess_drawing(canvas_drawing())
    assert x is not None and float((x - ref).abs().mean()) < 0.03


def test_noisy_grey_photo_of_a_digit() -> None:
    rng = np.random.default_rng(0)
    alpha = canvas_drawing(size=400, width=24)[:, :, 3].astype(np.float64) / 255
    paper = 190 + rng.normal(0, 8, alpha.shape) - 40 * np.linspace(0, 1, 400)[None, :]  # shading
    photo = np.clip(paper * (1 - alpha) + 40 * alpha, 0, 255).astype(np.uint8)
    x = preprocess_drawing(np.stack([photo] * 3, axis=-1))
    assert x is not None
    assert_mnist_like(x)
    ref = preprocess_drawing(canvas_drawing())
    assert float((x - ref).abs().mean()) < 0.05


def test_mnist_digits_pass_through_almost_unchanged() -> None:
    # an MNIST-style digit (20-px box, centred by mass) comes out nearly the same
    digit = preprocess_drawing(canvas_drawing())
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[:, :, 3] = (digit[0].numpy() * 255).round().astype(np.uint8)
    again = preprocess_drawing(rgba)
    assert again is not None
    assert float((again - digit).abs().mean()) < 0.03


def test_accepts_float_and_single_channel_arrays() -> None:
    alpha = canvas_drawing()[:, :, 3]
    assert preprocess_drawing(alpha.astype(np.float32) / 255) is not None
    assert preprocess_drawing(alpha[:, :, None]) is not None
    with pytest.raises(ValueError):
        preprocess_drawing(np.zeros((4, 4, 2), np.uint8))


def test_naive_resize_keeps_position() -> None:
    corner = canvas_drawing(box=(0.02, 0.6, 0.3, 0.98))
    x = naive_resize(corner)
    cy, cx = centre_of_mass(x)
    assert cy > 18 and cx < 8


# --- uploads ------------------------------------------------------------------------------


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def test_read_png_and_jpeg_uploads() -> None:
    alpha = canvas_drawing()[:, :, 3]
    paper = np.stack([255 - alpha] * 3, axis=-1)
    for fmt in ("PNG", "JPEG"):
        image = read_image_file(png_bytes(paper, fmt))
        assert image.dtype == np.uint8 and image.shape[:2] == (280, 280)
        assert preprocess_drawing(image) is not None
    rgba = read_image_file(png_bytes(canvas_drawing()))
    assert rgba.shape == (280, 280, 4)


def test_large_photos_are_reduced() -> None:
    image = read_image_file(png_bytes(np.full((1200, 900, 3), 250, np.uint8)))
    assert max(image.shape[:2]) == 512


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"not an image at all", "not an image"),
        (pickle.dumps({"evil": 1}), "not an image"),
        (png_bytes(np.zeros((64, 64), np.uint8))[:60], "decoded"),
    ],
    ids=["empty", "text", "pickle", "truncated"],
)
def test_bad_uploads_raise_image_error(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        read_image_file(data)


def test_too_many_pixels_refused_before_decoding() -> None:
    data = png_bytes(np.zeros((400, 400), np.uint8))
    with pytest.raises(ImageError, match="megapixels"):
        read_image_file(data, max_pixels=100_000)
    with pytest.raises(ImageError, match="MB"):
        read_image_file(data, max_bytes=100)


# --- robustness study ---------------------------------------------------------------------


def test_distortions_keep_the_digit_inside_the_canvas() -> None:
    digit = (preprocess_drawing(canvas_drawing())[0].numpy() * 255).astype(np.uint8)
    for d in random_distortions(20, seed=1):
        rgba = distort_digit(digit, d)
        assert rgba.shape == (d.canvas, d.canvas, 4)
        assert rgba[:, :, 3].max() > 200
        assert_mnist_like(preprocess_drawing(rgba))


class _CentreDetector(torch.nn.Module):
    """Says 1 when the ink's centre of mass is near the middle, else 0 (no training needed)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = torch.arange(28.0).view(1, 1, 28, 1)
        cy = (x * ys).sum((1, 2, 3)) / x.sum((1, 2, 3)).clamp_min(1e-6)
        centred = ((cy - 13.5).abs() < 1.5).float()
        return torch.stack([1 - centred, centred] + [torch.zeros_like(cy)] * 8, dim=1)


def test_robustness_study_reports_each_condition() -> None:
    digit = torch.from_numpy((preprocess_drawing(canvas_drawing())[0].numpy() * 255).astype(np.uint8))
    images = digit.expand(12, 1, 28, 28).clone()
    labels = torch.ones(12, dtype=torch.long)
    result = robustness_study({"centre": _CentreDetector()}, images, labels, n=12, seed=3)
    r = result["results"]["centre"]
    assert set(r) == {"clean", "clean_preprocessed", "distorted_raw", "distorted_preprocessed"}
    assert r["clean"] == 100.0 and r["distorted_preprocessed"] == 100.0
    assert r["distorted_raw"] < 100.0
