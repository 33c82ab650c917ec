"""Small CNNs with named layers, normalisation inside and dropout for MC dropout.

Layout of :class:`SmallCNN` (input (N, C, 32, 32) in [0, 1])::

    normalize                      per-channel (x - mean) / std, buffers set from the training data
    features.block1                conv3x3-BN-ReLU x 2, 32x32      -> pool1 -> 16x16
    features.block2                conv3x3-BN-ReLU x 2, 16x16      -> pool2 -> 8x8
    features.block3 (cam_layer)    conv3x3-BN-ReLU x 2, 8x8
    classifier                     avgpool, flatten, dropout1, fc1, relu, dropout2, fc2 (logits)

Every ReLU is its own ``nn.ReLU`` module (not in-place) so that hook-based explainers
(guided backprop, deconvnet) and peer libraries such as Captum can see them.

:class:`SmallVAE` is the generative model that CLUE and delta-CLUE search in (lesson 08): a convolutional
variational autoencoder for 32x32 images with a Gaussian latent of ``latent`` dimensions.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; the statistics are buffers saved in the checkpoint."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> "Normalize":
        """Set mean and std from a batch of training images (N, C, H, W)."""
        self.mean.copy_(images.mean(dim=(0, 2, 3)))
        self.std.copy_(images.std(dim=(0, 2, 3)).clamp_min(1e-3))
        return self


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), bn1=nn.BatchNorm2d(c_out), relu1=nn.ReLU(),
        conv2=nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), bn2=nn.BatchNorm2d(c_out), relu2=nn.ReLU(),
    ))


class SmallCNN(nn.Module):
    """A compact VGG-style CNN for 32x32 images (about 80 000 parameters at ``width=16``)."""

    cam_layer_name = "features.block3"

    def __init__(self, in_channels: int = 3, num_classes: int = 9, width: int = 16, hidden: int = 128,
                 dropout: float = 0.25):
        super().__init__()
        w = width
        self.normalize = Normalize(in_channels)
        self.features = nn.Sequential(OrderedDict(
            block1=_conv_block(in_channels, w), pool1=nn.MaxPool2d(2),
            block2=_conv_block(w, 2 * w), pool2=nn.MaxPool2d(2),
            block3=_conv_block(2 * w, 4 * w),
        ))
        self.classifier = nn.Sequential(OrderedDict(
            pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
            dropout1=nn.Dropout(dropout), fc1=nn.Linear(4 * w, hidden), relu=nn.ReLU(),
            dropout2=nn.Dropout(dropout), fc2=nn.Linear(hidden, num_classes),
        ))
        self.num_classes = num_classes

    @property
    def cam_layer(self) -> nn.Module:
        """The last convolutional block (8x8 maps), the default layer for CAM methods."""
        return self.features.block3

    @property
    def last_layer(self) -> nn.Linear:
        """The final linear layer (logits = W h + b), used by gradient-based trust scores."""
        return self.classifier.fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) for images (N, C, H, W) in [0, 1]."""
        return self.classifier(self.features(self.normalize(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, hidden): the input of the last linear layer."""
        h = self.features(self.normalize(x))
        c = self.classifier
        return c.relu(c.fc1(c.dropout1(c.flatten(c.pool(h)))))


class NarrowResNet(nn.Module):
    """torchvision's own ResNet classes at small width: ``normalize``, then a ``torchvision.models.ResNet``
    with ``BasicBlock`` s (batch norm, in-place ReLUs, residual additions ``out += identity``).

    For 28x28 or 32x32 images the stem is a 3x3 stride-1 convolution without max pooling, and the four
    stages have ``width`` x (1, 2, 4, 8) channels with ``blocks`` BasicBlocks each (28x28 -> 28, 14, 7, 4).
    ``net.layer4`` is the last feature map (the CAM layer), ``net.fc`` the logits layer.
    """

    cam_layer_name = "net.layer4"

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16, blocks: int = 1):
        super().__init__()
        from torchvision.models.resnet import BasicBlock, ResNet

        self.normalize = Normalize(in_channels)
        net = ResNet(BasicBlock, [blocks] * 4, num_classes=num_classes)
        # the ResNet constructor builds 64-512 channels; rebuild the stages at `width` with its own helper
        net.inplanes = width
        net.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        net.bn1 = nn.BatchNorm2d(width)
        net.maxpool = nn.Identity()
        net.layer1 = net._make_layer(BasicBlock, width, blocks)
        net.layer2 = net._make_layer(BasicBlock, 2 * width, blocks, stride=2)
        net.layer3 = net._make_layer(BasicBlock, 4 * width, blocks, stride=2)
        net.layer4 = net._make_layer(BasicBlock, 8 * width, blocks, stride=2)
        net.fc = nn.Linear(8 * width, num_classes)
        for m in net.modules():  # torchvision's initialisation, applied to the rebuilt layers
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.net = net
        self.num_classes = num_classes

    @property
    def cam_layer(self) -> nn.Module:
        return self.net.layer4

    @property
    def last_layer(self) -> nn.Linear:
        return self.net.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) for images (N, C, H, W) in [0, 1]."""
        return self.net(self.normalize(x))


class Ensemble(nn.Module):
    """A deep ensemble. ``forward`` returns log of the mean member probability (N, K), so that
    ``softmax(forward(x))`` is the ensemble's predictive distribution."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.num_classes = self.members[0].num_classes

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every member, (M, N, K)."""
        return torch.stack([m(x) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(self.member_logits(x), dim=-1)
        return torch.logsumexp(log_probs, dim=0) - torch.log(torch.tensor(float(len(self.members))))


class SmallVAE(nn.Module):
    """A small convolutional VAE for (N, C, 32, 32) images in [0, 1] (about 85 000 parameters at
    ``width=12``, ``latent=16``): the auxiliary generative model of CLUE and delta-CLUE.

    ``encoder``: three 4x4 stride-2 convolutions with ReLUs (32 -> 16 -> 8 -> 4), flattened, then
    ``to_latent`` gives the mean and log-variance of q(z | x), (N, 2 * latent). ``decoder``: a linear layer
    back to (4 * width, 4, 4), three 4x4 stride-2 transposed convolutions (4 -> 8 -> 16 -> 32) and a sigmoid,
    the mean of the Bernoulli likelihood p(x | z). No dropout or batch norm, so train and eval mode compute
    the same function.
    """

    input_size = 32

    def __init__(self, in_channels: int = 3, latent: int = 16, width: int = 12):
        super().__init__()
        w = width
        self.in_channels, self.latent = in_channels, latent
        self.encoder = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_channels, w, 4, stride=2, padding=1), relu1=nn.ReLU(),
            conv2=nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), relu2=nn.ReLU(),
            conv3=nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1), relu3=nn.ReLU(),
            flatten=nn.Flatten(),
        ))
        self.to_latent = nn.Linear(4 * w * 16, 2 * latent)
        self.decoder = nn.Sequential(OrderedDict(
            fc=nn.Linear(latent, 4 * w * 16), relu0=nn.ReLU(), unflatten=nn.Unflatten(1, (4 * w, 4, 4)),
            deconv1=nn.ConvTranspose2d(4 * w, 2 * w, 4, stride=2, padding=1), relu1=nn.ReLU(),
            deconv2=nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), relu2=nn.ReLU(),
            deconv3=nn.ConvTranspose2d(w, in_channels, 4, stride=2, padding=1), sigmoid=nn.Sigmoid(),
        ))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and log-variance (N, latent) each of q(z | x) for images (N, C, 32, 32)."""
        if x.dim() != 4 or x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"x must have shape (N, C, {self.input_size}, {self.input_size}) for SmallVAE, got "
                             f"{tuple(x.shape)}")
        mean, log_var = self.to_latent(self.encoder(x)).chunk(2, dim=1)
        return mean, log_var

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image (N, C, 32, 32) in [0, 1] for latent codes (N, latent)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction decode(mean of q(z | x)), deterministic: (N, C, 32, 32)."""
        return self.decode(self.encode(x)[0])
