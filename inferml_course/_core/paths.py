"""Path and noise sampling: gradients summed over points (IG, Blur IG, SmoothGrad) and SmoothGrad's noise
(SmoothGrad, VOICE). Points are processed :func:`.perturb.chunk_rule` at a time, each point one image
per input image (N), point-major; the dtype rule is :mod:`.perturb`'s.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch
from torch import nn

from .adapter import forward_images
from .batching import check_batch_size
from .hooks import relu_rule
from .perturb import chunk_rule
from .targets import as_target_tensor, check_model_output, resolve_targets

__all__ = ["path_start", "path_gradients", "noise_sigma", "noisy_points"]


def path_start(model: nn.Module, x: torch.Tensor, target, batch_size, n_points: int):
    """(chunk size, targets (N,)) of a path method on ``x`` (N, C, H, W), checked by the caller: ``batch_size``
    resolved for ``n_points`` forward and backward passes of N images, ``target=None`` the class predicted
    on ``x`` (one forward pass: a path need not contain ``x``)."""
    n = x.shape[0]
    size = check_batch_size(batch_size, x, model=model, work=n_points * n, backward=True)
    t = as_target_tensor(target, n, x.device)
    if t is None:
        with torch.no_grad():
            t = check_model_output(model(x), n).argmax(1)
    return size, t


def path_gradients(model: nn.Module, point: Callable, n_points: int, x: torch.Tensor, t: torch.Tensor | None,
                   batch_size: int | None, weights: torch.Tensor, rule: str | None = None):
    """sum_k w_k grad_x z_t(point_k) [* factor_k] (N, C, H, W), and the targets (N,).

    ``point(ks)`` returns (images, factor) for the point indices ``ks``: the images stacked as
    (len(ks) * N, C, H, W), point-major, and None or a tensor of that shape multiplying the gradient
    (the images themselves for input x gradient, the path's derivative for Blur IG). ``weights``
    (n_points,); ``t`` (N,) or None (the predicted class), range-checked against the first chunk's
    logits. ``rule``: a ReLU rule of :func:`.hooks.relu_rule` (``"guided"``, ``"deconvnet"``) or None.
    """
    n = x.shape[0]
    step = chunk_rule(batch_size, n, n_points)
    total = torch.zeros_like(x)
    with torch.enable_grad(), (relu_rule(model, rule) if rule else nullcontext()):
        for start in range(0, n_points, step):
            ks = list(range(start, min(n_points, start + step)))
            images, factor = point(ks)
            inp = images.detach().requires_grad_(True)
            logits = check_model_output(forward_images(model, inp), inp.shape[0])
            if start == 0:
                t = resolve_targets(t, logits[:n])
            (grad,) = torch.autograd.grad(logits.gather(1, t.repeat(len(ks))[:, None]).sum(), inp)
            if factor is not None:
                grad = grad * factor
            w = weights[start:start + len(ks)].to(device=x.device, dtype=x.dtype)
            total += (grad.view(len(ks), *x.shape) * w.view(-1, 1, 1, 1, 1)).sum(0)
    return total, t


def noise_sigma(x: torch.Tensor, noise: float, noise_type: str = "relative") -> torch.Tensor:
    """SmoothGrad's noise standard deviation per image (N, 1, 1, 1): ``noise`` times each image's value
    range max - min (``"relative"``, the paper) or ``noise`` itself (``"absolute"``, Captum's ``stdevs``)."""
    n = x.shape[0]
    if noise_type == "relative":
        flat = x.detach().reshape(n, -1)
        sigma = noise * (flat.amax(1) - flat.amin(1))
    else:
        sigma = torch.full((n,), float(noise), device=x.device, dtype=x.dtype)
    return sigma.to(x.dtype).view(n, 1, 1, 1)


def noisy_points(x: torch.Tensor, sigma: torch.Tensor, seed: int) -> Callable:
    """``point(ks)``: noisy copies x + sigma eps (len(ks) * N, C, H, W), point-major, one (N, C, H, W)
    draw per point from a local generator seeded with ``seed``. Call it with consecutive ``ks`` from 0:
    the draws follow the calls, so any chunking gives the same copies."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    xd = x.detach()

    def point(ks):
        eps = torch.stack([torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) for _ in ks])
        return (xd.unsqueeze(0) + sigma.unsqueeze(0) * eps).reshape(-1, *x.shape[1:])

    return point
