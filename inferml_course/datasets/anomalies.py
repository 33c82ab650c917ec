"""Semi-synthetic anomalies: sign images with a pasted foreign patch and its ground-truth mask.

Used to evaluate uncertainty attribution: a good attribution map should point at the patch.
"""
from __future__ import annotations

import torch

from .._core.arguments import checked
from .._core.checks import check_choice, check_positive_int, check_seed
from ._base import ImageDataset
from .ood import faces, noise, textures
from .signs import SPLIT_SIZES, signs

PATCH_SOURCES = ("textures", "faces", "noise")


@checked
def anomalies(n: int = 500, seed: int = 0, patch_size: tuple[int, int] = (8, 14), source: str = "textures",
              on_sign: bool = True) -> ImageDataset:
    """``n`` test-split signs, each with one pasted square patch.

    Args:
        patch_size: (min, max) side in pixels, drawn uniformly per image.
        source: where patch content comes from (``textures``, ``faces`` or ``noise``).
        on_sign: centre each patch inside the sign (so it can change the prediction).

    Returns:
        ImageDataset with the original labels, masks ``anomaly``, ``sign`` and ``part``
        (N, 32, 32), and attribute ``clean_index`` (the row of the clean test image).
    """
    check_positive_int(n, "n")
    check_seed(seed)
    check_choice(source, PATCH_SOURCES, "source")
    if on_sign not in (True, False):
        raise TypeError(f"on_sign must be True or False, got {on_sign!r}")
    message = f"patch_size must be (min, max) integers with 1 <= min <= max <= 32, got {patch_size!r}"
    if not isinstance(patch_size, (tuple, list)) or len(patch_size) != 2:
        raise ValueError(message)
    lo, hi = patch_size
    if not (isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool) and not isinstance(hi, bool)
            and 1 <= lo <= hi <= 32):
        raise ValueError(message)
    gen = torch.Generator().manual_seed(seed)
    test = signs("test")
    index = torch.randperm(SPLIT_SIZES["test"], generator=gen)
    index = index.repeat(n // len(index) + 1)[:n]
    base = test.subset(index)
    content = {"textures": textures, "faces": faces, "noise": noise}[source](n, seed + 1)

    side = torch.randint(lo, hi + 1, (n, 1, 1), generator=gen)
    if on_sign:  # centre on a random sign pixel
        weights = base.masks["sign"].flatten(1).float() + 1e-6
        flat = torch.multinomial(weights, 1, generator=gen).view(n, 1, 1)
        cy, cx = flat // 32, flat % 32
    else:
        cy = torch.randint(0, 32, (n, 1, 1), generator=gen)
        cx = torch.randint(0, 32, (n, 1, 1), generator=gen)
    top = (cy - side // 2).clamp(0, 32).clamp(max=32 - side)
    left = (cx - side // 2).clamp(0, 32).clamp(max=32 - side)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    mask = (yy >= top) & (yy < top + side) & (xx >= left) & (xx < left + side)
    images = torch.where(mask.unsqueeze(1), content, base.images)
    masks = {"anomaly": mask, **base.masks}
    return ImageDataset(images, base.labels, base.classes, masks, f"sign anomalies ({source} patches)",
                        {"clean_index": index})
