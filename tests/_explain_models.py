"""Tiny models shared by the explain tests (built in code, no checkpoints)."""
import torch
from torch import nn

from inferml_course.models import SmallCNN


def linear_model(c=3, h=6, w=5, k=4, dtype=torch.float64, seed=0):
    """logits = W vec(x) + b: every gradient method has a closed form."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, k)).to(dtype)
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(k, c * h * w, generator=g, dtype=dtype))
        model[1].bias.copy_(torch.randn(k, generator=g, dtype=dtype))
    return model.eval()


def small_cnn(dtype=torch.float64, seed=0, in_channels=3, num_classes=5, width=4):
    """An untrained SmallCNN with non-trivial batch-norm statistics and normalisation."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(in_channels, num_classes, width=width, hidden=16).to(dtype)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
            model.normalize.mean.copy_(torch.tensor([0.4, 0.5, 0.6][:in_channels], dtype=dtype))
            model.normalize.std.copy_(torch.tensor([0.2, 0.25, 0.3][:in_channels], dtype=dtype))
    return model.eval()


def images(n=3, c=3, h=16, w=16, dtype=torch.float64, seed=1):
    return torch.rand((n, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=dtype)


class TwoChannelModel(nn.Module):
    """A model whose explanation is known by construction.

    The 'cam' layer is a 1x1 convolution copying input channels 0 and 1 (A = x[:, :2]);
    z_0 = mean(A_0) - mean(A_1), z_1 = mean(A_1) - mean(A_0), z_2 = 0.
    So "why class 0?" is exactly where channel 0 exceeds channel 1.
    """

    def __init__(self):
        super().__init__()
        self.cam = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.cam.weight.zero_()
            self.cam.weight[0, 0] = 1
            self.cam.weight[1, 1] = 1
        self.head = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0], [0.0, 0.0]]))

    @property
    def cam_layer(self):
        return self.cam

    def forward(self, x):
        return self.head(self.cam(x).mean((2, 3)))


def two_squares():
    """One image (1, 3, 8, 8), float64: channel 0 bright in the top-left square, channel 1 in the bottom-right."""
    x = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    x[0, 0, :3, :3] = 1.0
    x[0, 1, 5:, 5:] = 0.5
    return x


class TinyVAE(nn.Module):
    """A small linear VAE with random weights for images (c, h, w): ``encode`` gives (mean, log-variance) of a
    ``latent``-dimensional code, ``decode`` images in [0, 1] (for CLUE and delta-CLUE, which only need the two)."""

    def __init__(self, c=3, h=16, w=16, latent=4, dtype=torch.float64, seed=0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.enc = nn.Linear(c * h * w, 2 * latent).to(dtype)
            self.dec = nn.Linear(latent, c * h * w).to(dtype)
        self.shape = (c, h, w)

    def encode(self, x):
        return self.enc(x.flatten(1)).chunk(2, dim=1)

    def decode(self, z):
        return torch.sigmoid(self.dec(z)).view(-1, *self.shape)
