"""The online extras live in :mod:`inferml_course.online` (shared by every family); this module keeps
the names lesson 03 used."""
from __future__ import annotations

from ..online import can_download, imagenet_model

__all__ = ["can_download", "imagenet_resnet18"]


def imagenet_resnet18(pretrained: bool = True):
    """``imagenet_model("resnet18", pretrained)``: see :func:`inferml_course.online.imagenet_model`."""
    return imagenet_model("resnet18", pretrained)
