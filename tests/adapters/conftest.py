"""Shared inputs for the adapter tests: three raw images of different kinds, a few texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def image_items(tmp_path_factory: pytest.TempPathFactory) -> list:
    """A PNG file path (40x30 RGB), a PIL image (64x50 RGB) and a grey uint8 array (28x28)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("images")
    path = Path(folder) / "a.png"
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(path)
    pil = Image.fromarray(rng.integers(0, 256, (50, 64, 3), dtype=np.uint8))
    grey = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    return [str(path), pil, grey]


TEXTS = ["the cat sat on the mat", "a dog ran in the park today", "hello"]


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine OpenMP spin-waits
    make a 32-px MobileNet forward 50x slower with 2 threads than with 1; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
