"""Datasets of the course, all generated or bundled with a dependency (nothing downloads).

``load(name, split)`` is the single entry point used by lessons and widgets::

    from inferml_course import datasets
    train = datasets.load("signs", "train")
    test_c = datasets.corrupted(datasets.load("signs", "test"), "fog", severity=3)
"""
from __future__ import annotations

from .._core.arguments import checked
from .._core.checks import check_choice
from ._base import ImageDataset
from .anomalies import anomalies
from .digits import digits
from .fashion import CLASSES as FASHION_CLASSES, CONFUSABLE_GROUPS, CONFUSABLE_PAIRS, fashion
from .signs import CLASSES as SIGN_CLASSES, CONTRAST_PAIRS, NEW_CLASSES, generate_signs, new_class_signs, signs

__all__ = [
    "ImageDataset", "DATASETS", "OOD_SETS", "load", "load_ood", "signs", "generate_signs", "new_class_signs",
    "digits", "SIGN_CLASSES", "NEW_CLASSES", "CONTRAST_PAIRS", "CORRUPTIONS", "corrupt", "corrupted",
    "anomalies", "fashion", "FASHION_CLASSES", "CONFUSABLE_PAIRS", "CONFUSABLE_GROUPS", "GRAY_CORRUPTIONS",
    "FASHION_OOD_SETS",
]

#: Names accepted by :func:`load`.
DATASETS = ("signs", "signs_spurious", "digits", "fashion")
#: Names accepted by :func:`load_ood`.
OOD_SETS = ("new_classes", "textures", "digits_rgb", "faces", "noise")
#: Names accepted by :func:`load_ood` with ``world="fashion"`` (grey 1x28x28 images).
FASHION_OOD_SETS = ("digits", "textures", "faces", "noise")


@checked
def load(name: str, split: str = "train"):
    """A fixed split (``train``, ``val``, ``test``) of ``signs``, ``signs_spurious``, ``digits`` or ``fashion``
    (Fashion-MNIST: ``test`` is the official 10 000 test images)."""
    check_choice(name, DATASETS, "dataset")
    if name == "digits":
        return digits(split)
    if name == "fashion":
        return fashion(split)
    return signs(split, spurious=name == "signs_spurious")


@checked
def load_ood(name: str, n: int = 500, seed: int = 0, world: str = "signs"):
    """An out-of-distribution set of ``n`` images, labels -1: 3x32x32 for ``world="signs"``, grey 1x28x28
    for ``world="fashion"`` (see :mod:`.ood`)."""
    from .ood import load_ood as _load_ood
    return _load_ood(name, n=n, seed=seed, world=world)


def __getattr__(name):  # keep `import inferml_course.datasets` light
    if name in ("CORRUPTIONS", "GRAY_CORRUPTIONS", "SEVERITIES", "corrupt", "corrupted"):
        from . import corruptions
        return getattr(corruptions, name)
    raise AttributeError(f"module 'inferml_course.datasets' has no attribute {name!r}")
