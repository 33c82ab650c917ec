"""Feature-map layouts: a layer's output as channels-first maps (N, K, h, w), whatever the architecture.

CAM methods weight the channels of a layer's output by its gradients. Architectures lay that output
out in three ways, told apart by rank and by what the model does with it in the same forward pass:

==================  =========================  =====================================================
layout              output                     turned into (N, K, h, w) by
==================  =========================  =====================================================
channels-first      (N, K, h, w)               nothing (CNNs, ConvNeXt ``features``)
channels-last       (N, h, w, K)               a permute; detected when a ``LayerNorm`` of the same
                                               forward normalises a 4-D tensor over its last axis of
                                               size K (torchvision Swin)
tokens              (N, T, D), T = [p +] h w   dropping p leading tokens (the model's ``num_prefix_tokens``
                                               when it declares one, as timm does; else 1, a class
                                               token, then 0, then 2, a class and a distillation
                                               token: the first that leaves a grid), then a reshape
                                               on the grid whose aspect is the image's (torchvision's,
                                               timm's and Hugging Face's ViT, DeiT; Swin's tokens)
==================  =========================  =====================================================

``reshape=`` (a callable, pytorch-grad-cam's ``reshape_transform``) overrides the detection: it maps
the raw output, and its gradient of the same shape, to (N, K, h, w), so it must be a selection or a
permutation of entries (a linear map), as every layout change is.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = ["feature_map_view", "grid_of"]


def grid_of(tokens: int, image_size) -> tuple[int, int] | None:
    """(h, w) with h w = ``tokens`` and h / w closest to the image's H / W, or None when no grid fits."""
    height, width = (int(s) for s in image_size)
    h = max(1, round(math.sqrt(tokens * height / width)))
    for cand in sorted({h, h - 1, h + 1} - {0}):
        if tokens % cand == 0 and (tokens // cand) * height == cand * width:
            return cand, tokens // cand
    return None


def _tokens_view(shape, image_size, prefix=None) -> Callable:
    n, t, d = shape
    # the model's declared prefix first (timm's num_prefix_tokens), then a class token (ViT), no prefix
    # (Swin, patch tokens only), a class and a distillation token (DeiT distilled)
    drops = [v for v in dict.fromkeys(((prefix,) if prefix is not None else ()) + (1, 0, 2)) if 0 <= v < t]
    for drop in drops:
        grid = grid_of(t - drop, image_size) if t - drop > 1 else None
        if grid is not None:
            h, w = grid
            return lambda g: g[:, drop:, :].reshape(g.shape[0], h, w, d).permute(0, 3, 1, 2)
    raise ValueError(f"layer outputs tokens {tuple(shape)}: dropping {', '.join(map(str, drops))} leading tokens "
                     f"leaves no grid with the images' aspect {tuple(image_size)}; pass reshape= (a callable from "
                     "the layer's output to (N, K, h, w))")


def feature_map_view(output: torch.Tensor, image_size, reshape=None, channels_last=(), prefix=None) -> Callable:
    """A function mapping tensors shaped like ``output`` (the layer's output, or its gradient) to (N, K, h, w).

    ``channels_last``: the sizes of the last axis of 4-D tensors that a ``LayerNorm`` normalised in the
    same forward pass (the evidence of a channels-last layout). ``prefix``: the number of leading
    non-patch tokens the model declares (timm's ``num_prefix_tokens``), tried first. Raises
    ``ValueError`` for an output it cannot read (pass ``reshape=``).
    """
    n = output.shape[0]
    if reshape is not None:
        if not callable(reshape):
            raise TypeError(f"reshape must be a callable from the layer's output to (N, K, h, w), "
                            f"got {type(reshape).__name__}")
        probe = reshape(output.detach())
        if not isinstance(probe, torch.Tensor) or probe.dim() != 4 or probe.shape[0] != n:
            got = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
            raise ValueError(f"reshape must return feature maps (N, K, h, w) with N = {n}; it returned {got} "
                             f"from the layer's output {tuple(output.shape)}")
        return reshape
    if output.dim() == 3:
        return _tokens_view(output.shape, image_size, prefix)
    if output.dim() == 4:
        last, first = output.shape[-1], output.shape[1]
        if last in channels_last and first != last:
            return lambda g: g.permute(0, 3, 1, 2)
        if last in channels_last:
            raise ValueError(f"layer output {tuple(output.shape)}: cannot tell channels-first from channels-last "
                             "(a LayerNorm reads this size on the last axis); pass reshape=")
        return lambda g: g
    raise ValueError(f"layer must output feature maps (N, K, h, w), channels-last maps (N, h, w, K) or tokens "
                     f"(N, T, D); it outputs shape {tuple(output.shape)}; pass another layer or reshape=")
