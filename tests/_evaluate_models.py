"""Tiny models with known answers for the evaluate tests (built in code, no checkpoints)."""
import torch
from torch import nn


class RegionModel(nn.Module):
    """Additive logits: z_0 = sum_p w_p (x_p - 0.5) over channel-summed pixels, z_1 = 1, z_2 = -z_0 / 2
    (a grey image, z_0 = 0, is class 1).

    ``weights`` (H, W) >= 0 puts the evidence for class 0 where it is positive, so the perfect
    explanation of class 0 is w (x - 0.5) summed over channels, pixel by pixel.
    """

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.register_buffer("w", weights.clone())

    def forward(self, x):
        z0 = (self.w * (x - 0.5).sum(1)).flatten(1).sum(1)
        return torch.stack([z0, torch.ones_like(z0), -0.5 * z0], 1)


def region_setup(n=4, h=8, w=8, seed=0, dtype=torch.float64):
    """Images whose class-0 evidence sits in a central square; returns (model, x, perfect maps, region mask)."""
    g = torch.Generator().manual_seed(seed)
    region = torch.zeros(h, w, dtype=torch.bool)
    region[h // 4:3 * h // 4, w // 4:3 * w // 4] = True
    weights = region.to(dtype) * (1 + torch.rand(h, w, generator=g, dtype=dtype))
    x = torch.rand(n, 3, h, w, generator=g, dtype=dtype) * 0.3
    x[:, :, region] += 0.6  # bright region: positive evidence for class 0
    model = RegionModel(weights).eval()
    perfect = (weights * (x - 0.5).sum(1))  # exact per-pixel contribution
    return model, x, perfect, region.expand(n, h, w).clone()
