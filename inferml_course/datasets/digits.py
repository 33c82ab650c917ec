"""scikit-learn's bundled handwritten digits (real data, 1 797 images), upsampled to 32x32."""
from __future__ import annotations

from functools import lru_cache
from types import MappingProxyType

import torch
import torch.nn.functional as F

from .._core.arguments import checked
from .._core.checks import check_choice
from ._base import ImageDataset

CLASSES = tuple(str(i) for i in range(10))
#: Fixed split sizes; the split is a seeded permutation of the 1 797 images.
SPLIT_SIZES = MappingProxyType({"train": 1_197, "val": 200, "test": 400})  # read-only
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _all_digits(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0      # (N, 1, 8, 8)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)
    labels = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    return images[order], labels[order]


@checked
def digits(split: str = "train") -> ImageDataset:
    """A fixed split of the digits: images (N, 1, 32, 32) in [0, 1] (white ink on black), labels 0-9.

    The images and labels are copies of the cached data set (changing them changes no later call)."""
    check_choice(split, tuple(SPLIT_SIZES), "split")
    images, labels = _all_digits()
    start = {"train": 0, "val": SPLIT_SIZES["train"], "test": SPLIT_SIZES["train"] + SPLIT_SIZES["val"]}[split]
    stop = start + SPLIT_SIZES[split]
    return ImageDataset(images[start:stop].clone(), labels[start:stop].clone(), CLASSES, name=f"digits {split}")
