"""The table of supported datasets: what they look like and what a verified copy must contain."""

from dataclasses import dataclass

from .errors import DatasetError


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset.

    Attributes:
        name: registry key, ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        shape: one image as ``(C, H, W)``.
        classes: the class names, indexed by label.
        train_size: number of training images.
        test_size: number of test images.
    """

    name: str
    shape: tuple[int, int, int]
    classes: tuple[str, ...]
    train_size: int
    test_size: int


@dataclass(frozen=True)
class Expected:
    """What the converted arrays of a dataset must match exactly.

    Attributes:
        train_counts: number of training images per class, indexed by label.
        test_counts: number of test images per class, indexed by label.
        sha256: SHA-256 over the raw bytes of ``train_x``, ``train_y``, ``test_x`` and
            ``test_y`` (uint8, C order, in that order); see
            :func:`fa_core.data.arrays.array_digest`.
    """

    train_counts: tuple[int, ...]
    test_counts: tuple[int, ...]
    sha256: str


_DIGITS = tuple(str(d) for d in range(10))
_FASHION = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_CIFAR10 = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("mnist", (1, 28, 28), _DIGITS, 60_000, 10_000),
        DatasetInfo("fashion_mnist", (1, 28, 28), _FASHION, 60_000, 10_000),
        DatasetInfo("cifar10", (3, 32, 32), _CIFAR10, 50_000, 10_000),
    )
}
"""Supported datasets by name. Tests may replace entries (e.g. with smaller sizes)."""

EXPECTED: dict[str, Expected] = {
    "mnist": Expected(
        train_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
        test_counts=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
        sha256="06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16",
    ),
    "fashion_mnist": Expected(
        train_counts=(6000,) * 10,
        test_counts=(1000,) * 10,
        sha256="ca3ab2a37f845e1b8ae23cab1b51749a3011ba3bf1d9016176d75cbaabac376f",
    ),
    "cifar10": Expected(
        train_counts=(5000,) * 10,
        test_counts=(1000,) * 10,
        sha256="32e5966899bde482c0ef7d076bf69809b4b1488c806f657a814cfca4646ec493",
    ),
}
"""Verification targets by name, pinned from the official data. Tests may replace entries."""


def get_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` for ``name`` or raise :class:`DatasetError`."""
    try:
        return DATASETS[name]
    except KeyError as err:
        known = ", ".join(sorted(DATASETS))
        raise DatasetError(f"Unknown dataset {name!r}; choose one of: {known}.") from err


def get_expected(name: str) -> Expected:
    """Return the pinned verification targets for ``name``."""
    get_info(name)
    return EXPECTED[name]
