"""Optional online extras (Colab): detect, quickly and without hanging, whether a download is possible."""
from __future__ import annotations

import socket

__all__ = ["can_download", "imagenet_resnet18"]


def can_download(host: str = "download.pytorch.org", port: int = 443, timeout: float = 3.0) -> bool:
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


def imagenet_resnet18(pretrained: bool = True):
    """torchvision's ResNet-18 in eval mode with ImageNet normalisation inside (so it takes images in
    [0, 1], like every course model), its ``cam_layer`` (``layer4``) and the 1000 class names.

    ``pretrained=True`` downloads the weights (about 45 MB) on first use; ``False`` gives random
    weights (offline tests of the same code path).
    """
    import torch
    from torch import nn
    from torchvision.models import ResNet18_Weights, resnet18

    from ..models import Normalize

    weights = ResNet18_Weights.IMAGENET1K_V1
    net = resnet18(weights=weights if pretrained else None)

    class ImageNetModel(nn.Module):
        cam_layer_name = "net.layer4"

        def __init__(self):
            super().__init__()
            self.normalize = Normalize(3)  # ImageNet statistics, so baseline="mean" is ImageNet's mean colour
            self.normalize.mean.copy_(torch.tensor([0.485, 0.456, 0.406]))
            self.normalize.std.copy_(torch.tensor([0.229, 0.224, 0.225]))
            self.net = net
            self.classes = list(weights.meta["categories"])

        @property
        def cam_layer(self):
            return self.net.layer4

        def forward(self, x):
            return self.net(self.normalize(x))

    return ImageNetModel().eval()
