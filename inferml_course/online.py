"""Optional online extras (Colab): ImageNet-trained torchvision models and photographs for the lessons'
"On an ImageNet model" sections.

Nothing here downloads unless asked: :func:`can_download` answers within a few seconds and never
raises, so a lesson skips its online cell offline; :func:`imagenet_model` with ``pretrained=False``
builds the same wrapper with random weights (the offline tests run that path), and with
``pretrained=True`` offline it fails at once with a message instead of hanging in a download.

==================  ===========================================================================
:func:`imagenet_model`   a torchvision classifier taking images in [0, 1] (ImageNet normalisation
                         inside, as every course model), with its 1000 class names
:func:`photos`           scikit-image's bundled photographs (no download), square-cropped and resized
:data:`ARCHITECTURES`    the models the lessons use (VGG-16, ResNet-18 / 50, Swin-T, ViT-B/16)
==================  ===========================================================================

The models carry no course conventions (no ``cam_layer``): the CAM layer, the classifier and the
normalisation are found by the model adapter (:mod:`inferml_course._core.adapter`), as for a
student's own network.
"""
from __future__ import annotations

import socket

import torch
from torch import nn
from ._core.arguments import checked
from ._core.checks import check_choice, check_positive_int
from .models import Normalize

__all__ = ["can_download", "imagenet_model", "photos", "ARCHITECTURES", "PHOTOS", "DOWNLOAD_HOST"]

#: torchvision names of the ImageNet classifiers the lessons use
ARCHITECTURES = ("vgg16", "resnet18", "resnet50", "swin_t", "vit_b_16")
#: scikit-image's bundled photographs (shipped with the package: no download)
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
#: where torchvision's weights come from
DOWNLOAD_HOST = "download.pytorch.org"


@checked
def can_download(host: str = DOWNLOAD_HOST, port: int = 443, timeout: float = 3.0) -> bool:
    """True when ``host`` resolves and accepts a TCP connection within ``timeout`` seconds in total.

    Never raises and never waits longer than about ``timeout``: offline (CI, a laptop on a train)
    it returns False and a lesson skips its online cell.
    """
    import concurrent.futures
    import time

    deadline = time.monotonic() + timeout

    def probe():
        for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with socket.socket(family, kind, proto) as s:
                s.settimeout(left)
                try:
                    s.connect(address)
                    return True
                except OSError:
                    continue
        return False

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return bool(pool.submit(probe).result(timeout=timeout))
    except Exception:  # DNS failure, timeout, no network: all mean "no"
        return False
    finally:
        pool.shutdown(wait=False)


class ImageNetModel(nn.Module):
    """``net(normalize(x))`` for images (N, 3, H, W) in [0, 1]; ``classes``: the 1000 ImageNet names."""

    def __init__(self, net: nn.Module, classes: list[str], name: str):
        super().__init__()

        self.normalize = Normalize(3)  # ImageNet statistics, so baseline="mean" is ImageNet's mean colour
        self.normalize.mean.copy_(torch.tensor([0.485, 0.456, 0.406]))
        self.normalize.std.copy_(torch.tensor([0.229, 0.224, 0.225]))
        self.net = net
        self.classes = list(classes)
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


@checked
def imagenet_model(arch: str = "resnet50", pretrained: bool = True, timeout: float = 3.0) -> ImageNetModel:
    """A torchvision ImageNet classifier (``arch`` in :data:`ARCHITECTURES`) wrapped as :class:`ImageNetModel`,
    in eval mode.

    ``pretrained=True`` downloads torchvision's default weights on first use (VGG-16 528 MB, ResNet-50
    98 MB, Swin-T 108 MB, ResNet-18 45 MB, ViT-B/16 330 MB; cached by ``torch.hub``) and loads them with
    ``weights_only=True`` (tensors only, no pickled code) after checking their hash; offline it raises
    ``RuntimeError`` within ``timeout`` seconds. ``pretrained=False``: random weights, no network.
    """
    import torchvision

    check_choice(arch, ARCHITECTURES, "arch")
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    net = torchvision.models.get_model(arch, weights=None)
    if pretrained:
        if not can_download(timeout=timeout):
            raise RuntimeError(f"imagenet_model({arch!r}, pretrained=True) downloads its weights from "
                               f"{DOWNLOAD_HOST}, which cannot be reached (offline?); run on Colab or online, or "
                               "pass pretrained=False for random weights")
        state = torch.hub.load_state_dict_from_url(weights.url, progress=True, check_hash=True, weights_only=True)
        net.load_state_dict(state)
    return ImageNetModel(net, weights.meta["categories"], arch).eval()


@checked
def photos(names=PHOTOS, size: int = 224) -> torch.Tensor:
    """scikit-image's photographs ``names`` (see :data:`PHOTOS`) as images (N, 3, size, size) in [0, 1]:
    the central square of each, resized with antialiasing."""
    import torch.nn.functional as F
    from skimage import data


    check_positive_int(size, "size")
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names:
        raise ValueError("names must name at least one photograph")
    out = []
    for name in names:
        check_choice(name, PHOTOS, "names")
        img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float() / 255
        h, w = img.shape[-2:]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = img[None, :, top:top + side, left:left + side]
        resized = F.interpolate(square, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(resized[0].clamp(0, 1))   # the antialiasing filter overshoots [0, 1] by a little
    return torch.stack(out)
