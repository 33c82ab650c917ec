"""Out-of-distribution sets: 3x32x32 images in [0, 1] for the sign models (``world="signs"``) or
1x28x28 grey images for the Fashion-MNIST models (``world="fashion"``), labels -1.

* ``new_classes``: signs of classes never trained on (no parking, roundabout), a near-OOD set;
* ``textures``: crops of scikit-image's bundled brick, grass and gravel photographs;
* ``digits_rgb``: the digits test split as grey RGB images;
* ``faces``: scikit-image's bundled ``lfw_subset`` faces (random 32x32 crops and flips);
* ``noise``: uniform and smoothed noise.

For Fashion-MNIST (``world="fashion"``): ``digits`` (scikit-learn's digits at 28x28), ``textures``,
``faces`` and ``noise``, all grey 1x28x28 (no colour cast).

All bundled with dependencies: nothing downloads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._core.checks import check_choice, check_positive_int, check_seed
from ._base import ImageDataset
from .signs import CLASSES as SIGN_CLASSES, new_class_signs

OOD_SETS = ("new_classes", "textures", "digits_rgb", "faces", "noise")
#: The OOD sets of the Fashion-MNIST world (1x28x28 grey).
FASHION_OOD_SETS = ("digits", "textures", "faces", "noise")
WORLDS = ("signs", "fashion")


def _random_crops(sources: torch.Tensor, n: int, gen: torch.Generator, crop: tuple[int, int], size: int = 32):
    """``n`` random square crops (side in ``crop``) of random images of ``sources`` (M, C, H, W), resized."""
    m, _, h, w = sources.shape
    side = torch.randint(crop[0], crop[1] + 1, (n,), generator=gen)
    which = torch.randint(0, m, (n,), generator=gen)
    top = (torch.rand(n, generator=gen) * (h - side + 1)).long()
    left = (torch.rand(n, generator=gen) * (w - side + 1)).long()
    # an affine grid per crop: one batched grid_sample instead of a loop over crops
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = side / w
    theta[:, 1, 1] = side / h
    theta[:, 0, 2] = (2 * left + side) / w - 1
    theta[:, 1, 2] = (2 * top + side) / h - 1
    grid = F.affine_grid(theta, (n, sources.shape[1], size, size), align_corners=False)
    out = F.grid_sample(sources[which], grid, mode="bilinear", align_corners=False)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out.clamp_(0, 1)


def textures(n: int = 500, seed: int = 0, channels: int = 3, size: int = 32) -> torch.Tensor:
    """Texture crops (n, channels, size, size) from scikit-image's brick, grass and gravel photographs
    (3 channels: with mild colour casts; 1 channel: grey)."""
    import skimage.data

    photos = torch.stack([torch.tensor(getattr(skimage.data, k)(), dtype=torch.float32) / 255
                          for k in ("brick", "grass", "gravel")]).unsqueeze(1)
    gen = torch.Generator().manual_seed(seed)
    grey = _random_crops(photos, n, gen, (48, 160), size=size)
    if channels == 1:
        return grey
    tint = 0.7 + 0.3 * torch.rand(n, channels, 1, 1, generator=gen)          # mild colour casts
    return (grey * tint).clamp_(0, 1)


def faces(n: int = 500, seed: int = 0, channels: int = 3, size: int = 32) -> torch.Tensor:
    """Faces (n, channels, size, size) from scikit-image's bundled ``lfw_subset`` (random crops and flips)."""
    import skimage.data

    # lfw_subset holds 100 faces followed by 100 non-face patches: keep the faces
    photos = torch.tensor(skimage.data.lfw_subset()[:100], dtype=torch.float32).unsqueeze(1)   # (100, 1, 25, 25)
    crops = _random_crops(photos, n, torch.Generator().manual_seed(seed), (21, 25), size=size)
    return crops.expand(-1, channels, -1, -1).clone()


def noise(n: int = 500, seed: int = 0, channels: int = 3, size: int = 32) -> torch.Tensor:
    """Half uniform noise, half smoothed noise (n, channels, size, size)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, size, size, generator=gen)
    smooth = F.interpolate(torch.rand(n, channels, 8, 8, generator=gen), size=size, mode="bicubic",
                           align_corners=False)
    half = torch.arange(n) % 2 == 1
    x[half] = smooth[half].clamp(0, 1)
    return x


def digits_rgb(n: int = 500, seed: int = 0) -> torch.Tensor:
    """Digits (test split) as grey RGB images (n, 3, 32, 32), sampled with replacement if n > 400."""
    from .digits import digits

    images = digits("test").images
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    idx = idx.repeat(n // len(images) + 1)[:n]
    return images[idx].expand(-1, 3, -1, -1).clone()


def digits_gray(n: int = 500, seed: int = 0, size: int = 28) -> torch.Tensor:
    """Digits (test split, white ink on black) as grey images (n, 1, size, size), with replacement if n > 400."""
    from .digits import digits

    images = F.interpolate(digits("test").images, size=(size, size), mode="bilinear", align_corners=False)
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images[idx.repeat(n // len(images) + 1)[:n]].clamp_(0, 1)


def load_ood(name: str, n: int = 500, seed: int = 0, world: str = "signs") -> ImageDataset:
    """An OOD set as an ImageDataset with labels -1 and the classes of ``world`` as ``classes``:
    ``world="signs"`` (3x32x32, :data:`OOD_SETS`) or ``"fashion"`` (1x28x28, :data:`FASHION_OOD_SETS`)."""
    check_choice(world, WORLDS, "world")
    check_choice(name, OOD_SETS if world == "signs" else FASHION_OOD_SETS, f"OOD set of the {world} world")
    check_positive_int(n, "n")
    check_seed(seed)
    if world == "fashion":
        from .fashion import CLASSES as FASHION_CLASSES

        if name == "digits":
            images = digits_gray(n, seed)
        else:
            images = {"textures": textures, "faces": faces, "noise": noise}[name](n, seed, channels=1, size=28)
        return ImageDataset(images, torch.full((n,), -1), FASHION_CLASSES, name=f"{name} (grey 28x28)")
    if name == "new_classes":
        return new_class_signs(n, seed=3_000 + seed)
    images = {"textures": textures, "digits_rgb": digits_rgb, "faces": faces, "noise": noise}[name](n, seed)
    return ImageDataset(images, torch.full((n,), -1), SIGN_CLASSES, name=name.replace("_", " "))
