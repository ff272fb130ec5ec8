import re

import pytest

from fa_core.data import DATASETS, DatasetError
from fa_core.data.registry import EXPECTED, get_expected, get_info


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_table_is_consistent(name: str) -> None:
    info = DATASETS[name]
    expected = EXPECTED[name]
    assert info.name == name
    assert len(info.classes) == len(expected.train_counts) == len(expected.test_counts) == 10
    assert sum(expected.train_counts) == info.train_size
    assert sum(expected.test_counts) == info.test_size
    assert info.shape in ((1, 28, 28), (3, 32, 32))
    assert re.fullmatch(r"[0-9a-f]{64}", expected.sha256)


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(DatasetError, match="cifar10, fashion_mnist, mnist"):
        get_info("imagenet")
    with pytest.raises(DatasetError):
        get_expected("imagenet")
