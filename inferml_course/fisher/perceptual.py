"""Perceptual components of a representation (Yarici, Kokilepersaud, Prabhushankar and AlRegib, ICIP 2024).

What does a network's *representation* take from an image's colour, its shape and its texture? The method
explains a representation h(x) (here the penultimate features, no label needed) with RELAX-style masking
(Wickstrom et al.): show the network many randomly masked versions of an image, measure how similar each
representation stays to a reference, and credit each pixel with the similarity of the masks that kept it:

    importance(p) = sum_m M_m(p) s_m / sum_m M_m(p),   s_m = cos(h(reference view), h(masked view m))

followed by a z-score over the pixels of each map. The four maps differ in what a mask removes (the authors'
code, ``olivesgatech/Explaining-Representation-Learning-with-Perceptual-Components``, ``Relax.py``):

==========  ==================================================  ===========================================
map         masked view (M: random mask in [0, 1])              reference view
==========  ==================================================  ===========================================
``full``    ``M * x`` (plain RELAX: the pixel is removed)        ``x``
``color``   ``M * x + (1 - M) * gray(x)`` (colour removed)       ``x``
``texture`` ``T * gray(x) + (1 - T) * blur(gray(x))``,            ``gray(x)``
            ``T = [strong edge or M > 0.5]`` (fine detail
            removed, the outline kept)
``shape``   ``M * edges(x)`` (edge image, parts removed)         ``edges(x)``
==========  ==================================================  ===========================================

``full`` uses RELAX's smooth masks (a 7 x 7 Bernoulli(0.5) grid, bilinear upsampling, a random shift of up
to 6 pixels); the three components share the authors' second kind of mask (a 14 x 14 Bernoulli(0.7) grid,
bicubic upsampling, a random crop of 10-50 % of its area). The slides compare maps by their correlation
(:func:`map_correlation`): across models (more agreement with a reference model's maps = a representation
better suited to the task) or, as lesson 01 also does, each component against the full map.

Where we reconstruct instead of copying (each is an argument):

* the edge image follows the authors' Canny-style detector (5-tap Gaussian blur with sigma 1, Sobel
  gradients summed over channels, non-maximum suppression along the gradient direction, ``1 - edges / max``:
  dark outlines on white); our Gaussian is normalised and the Sobel pass replicates border pixels (theirs
  pads with zeros, which draws an edge along the border of a bright image); the "strong edge" threshold
  ``edge_threshold=0.18`` is the authors' 5 (on ImageNet-normalised images with an unnormalised kernel)
  converted to our units, 5 x 0.226 / 2.48^2;
* the texture blur is a 5 x 5 Gaussian with ``blur_sigma=3.5`` (the authors draw sigma from [3, 4] each call);
* the crop of a component mask is drawn per mask (the authors' transform draws one crop per batch of 128),
  by sampling the bicubic interpolation of the grid instead of resizing a 3584 x 3584 upsampling; masks are
  clipped to [0, 1] (bicubic overshoot would leave the image range);
* a map whose importance is constant (standard deviation 0) is returned as zeros instead of NaN.

===================  ===============================================================================
function             returns
===================  ===============================================================================
``grayscale``        (N, C, H, W) luma 0.2989 R + 0.587 G + 0.114 B, repeated over the channels
``edge_views``       the edge image (N, C, H, W) and the strong-edge mask (N, 1, H, W)
``perceptual_views`` the views a lesson shows: ``gray``, ``blur``, ``edges``, ``strong_edges``
``relax_masks``      RELAX's smooth masks (n, 1, H, W)
``component_masks``  the components' masks (n, 1, H, W)
``relax_importance`` the weighted mean of similarities (H, W) and its z-score
``perceptual_components``  ``{"full", "color", "texture", "shape"}`` -> maps (N, H, W), z-scored
``map_correlation``  (N,) Pearson correlation of two batches of maps, image by image
===================  ===============================================================================
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._core.arguments import checked
from .._core.adapter import penultimate_features
from .._core.batching import check_batch_size
from .._core.checks import (check_choice, check_float_tensor, check_model, check_model_input, check_number,
                            check_positive_int, check_seed, check_unit_interval)
from .._core.images import gaussian_blur
from .._core.ranks import pearson_rows

__all__ = ["COMPONENTS", "grayscale", "edge_views", "perceptual_views", "relax_masks", "component_masks",
           "relax_importance", "perceptual_components", "map_correlation"]

#: the maps :func:`perceptual_components` computes, in order
COMPONENTS = ("full", "color", "texture", "shape")

_LUMA = (0.2989, 0.587, 0.114)  # torchvision's Grayscale (ITU-R 601-2)
_SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
# neighbour offsets (dy, dx) along the 4 gradient axes, for angles 0, 45, 90, 135 degrees
_AXES = ((0, 1), (1, 1), (1, 0), (1, -1))


@checked
def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W): the luma 0.2989 R + 0.587 G + 0.114 B repeated over the C = 3 channels
    (torchvision's ``Grayscale``, as the authors use it); a 1-channel batch is returned unchanged."""
    check_float_tensor(x, "x", "(N, C, H, W)", dim=4)
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"x must have 1 or 3 channels, got shape {tuple(x.shape)}")
    weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand_as(x).contiguous()


def _shift(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``out[..., i, j] = t[..., i + dy, j + dx]``, zero outside (the authors' zero-padded 3 x 3 filters)."""
    h, w = t.shape[-2:]
    padded = F.pad(t, (1, 1, 1, 1))
    return padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


@checked
def edge_views(x: torch.Tensor, edge_threshold: float = 0.18) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' Canny-style edge image and strong-edge mask (reconstructed, see the module docstring).

    Args:
        x: images (N, C, H, W) in [0, 1].
        edge_threshold: gradient magnitude (summed over channels) above which a pixel is a strong edge.

    Returns:
        ``(edges, strong)``: the edge image (N, C, H, W) in [0, 1], ``1 - thin / max(thin)`` per image (dark
        thin outlines on white; an image without edges is all white), and the strong-edge mask (N, 1, H, W)
        (1.0 where the gradient magnitude before thinning exceeds ``edge_threshold``, else 0.0).
    """
    check_float_tensor(x, "x", "(N, C, H, W)", dim=4)
    threshold = check_number(edge_threshold, "edge_threshold", allow_zero=True)
    n, c, h, w = x.shape
    smooth = gaussian_blur(x, 1.0, radius=2).reshape(n * c, 1, h, w)
    padded = F.pad(smooth, (1, 1, 1, 1), mode="replicate")
    kx = _SOBEL_X.to(x.dtype).to(x.device).view(1, 1, 3, 3)
    gx = F.conv2d(padded, kx).view(n, c, h, w)
    gy = F.conv2d(padded, kx.transpose(-1, -2)).view(n, c, h, w)
    magnitude = (gx ** 2 + gy ** 2).sqrt().sum(1, keepdim=True)  # (N, 1, H, W)
    angle = torch.atan2(gy.sum(1, keepdim=True), gx.sum(1, keepdim=True)) * (180.0 / math.pi) + 180.0
    axis = (torch.round(angle / 45.0) % 4).long()  # the 8 directions of the authors' filters, folded onto 4 axes
    keep = torch.zeros_like(magnitude, dtype=torch.bool)
    for a, (dy, dx) in enumerate(_AXES):
        is_max = (magnitude > _shift(magnitude, dy, dx)) & (magnitude > _shift(magnitude, -dy, -dx))
        keep |= (axis == a) & is_max
    thin = torch.where(keep, magnitude, torch.zeros_like(magnitude))
    top = thin.flatten(1).max(1).values.view(n, 1, 1, 1)
    edges = torch.where(top > 0, (top - thin) / top.clamp_min(1e-12), torch.ones_like(thin))
    return edges.expand(n, c, h, w).contiguous(), (magnitude > threshold).to(x.dtype)


@checked
def perceptual_views(x: torch.Tensor, blur_sigma: float = 3.5, edge_threshold: float = 0.18) -> dict:
    """The views of ``x`` (N, C, H, W) the components are built from: ``gray`` (colour removed), ``blur``
    (the grayscale image blurred: texture removed), ``edges`` (the edge image: shape only) and
    ``strong_edges`` (N, 1, H, W)."""
    check_float_tensor(x, "x", "(N, C, H, W)", dim=4)
    sigma = check_number(blur_sigma, "blur_sigma")
    gray = grayscale(x)
    edges, strong = edge_views(x, edge_threshold)
    return {"gray": gray, "blur": gaussian_blur(gray, sigma, radius=2), "edges": edges, "strong_edges": strong}


@checked
def relax_masks(n: int, shape: tuple[int, int], generator: torch.Generator, num_cells: int = 7,
                p_keep: float = 0.5) -> torch.Tensor:
    """RELAX's smooth masks (n, 1, H, W) in [0, 1]: a ``num_cells`` x ``num_cells`` grid of Bernoulli(``p_keep``)
    cells, bilinearly upsampled to ``shape``, reflect-padded by ``num_cells // 2`` pixels and cropped back at a
    random shift of 0 to ``num_cells - 1`` pixels per axis (the authors' ``mask_generator``). CPU tensor."""
    check_positive_int(n, "n")
    check_positive_int(num_cells, "num_cells")
    p = check_unit_interval(p_keep, "p_keep")
    h, w = shape
    grid = (torch.rand(n, 1, num_cells, num_cells, generator=generator) < p).float()
    up = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
    pad = num_cells // 2
    up = F.pad(up, (pad, pad, pad, pad), mode="reflect")
    sy = torch.randint(0, num_cells, (n,), generator=generator).clamp(max=2 * pad)
    sx = torch.randint(0, num_cells, (n,), generator=generator).clamp(max=2 * pad)
    rows = (sy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1).expand(n, 1, h, up.shape[-1])
    cropped = up.gather(2, rows)
    cols = (sx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w).expand(n, 1, h, w)
    return cropped.gather(3, cols)


@checked
def component_masks(n: int, shape: tuple[int, int], generator: torch.Generator, num_cells: int = 14,
                    p_keep: float = 0.7, scale: tuple[float, float] = (0.1, 0.5)) -> torch.Tensor:
    """The components' masks (n, 1, H, W) in [0, 1]: a ``num_cells`` x ``num_cells`` Bernoulli(``p_keep``) grid,
    its bicubic interpolation (corners aligned) read on a random crop covering a fraction ``scale`` of its area
    with aspect ratio in [3/4, 4/3] (torchvision's ``RandomResizedCrop``), one crop per mask, clipped to [0, 1].
    CPU tensor."""
    check_positive_int(n, "n")
    check_positive_int(num_cells, "num_cells")
    p = check_unit_interval(p_keep, "p_keep")
    lo, hi = (check_unit_interval(s, "scale", low_open=True) for s in scale)
    if lo > hi:
        raise ValueError(f"scale must be (low, high) with low <= high, got {scale!r}")
    h, w = shape
    grid = (torch.rand(n, 1, num_cells, num_cells, generator=generator) < p).float()
    area = lo + (hi - lo) * torch.rand(n, generator=generator)
    log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * torch.rand(n, generator=generator)
    ratio = log_ratio.exp()
    cw, ch = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)  # crop sides (fractions)
    x0, y0 = (1 - cw) * torch.rand(n, generator=generator), (1 - ch) * torch.rand(n, generator=generator)
    u = (torch.arange(w) + 0.5) / w
    v = (torch.arange(h) + 0.5) / h
    gx = (x0.view(n, 1, 1) + cw.view(n, 1, 1) * u.view(1, 1, w)).expand(n, h, w)
    gy = (y0.view(n, 1, 1) + ch.view(n, 1, 1) * v.view(1, h, 1)).expand(n, h, w)
    coords = torch.stack([gx, gy], -1) * 2 - 1  # grid_sample's [-1, 1], corners aligned
    return F.grid_sample(grid, coords, mode="bicubic", align_corners=True).clamp(0, 1)


@checked
def relax_importance(similarities: torch.Tensor, masks: torch.Tensor, standardize: bool = True) -> torch.Tensor:
    """``sum_m masks[m] * similarities[m] / sum_m masks[m]`` for similarities (n,) and masks (n, H, W) or
    (n, 1, H, W): the authors' running update in closed form; (H, W), computed in float64 and returned in the
    masks' dtype. A pixel no mask covers gets 0 (the authors start the sum of weights at 1e-10 for that;
    without it a constant similarity gives an exactly constant map). ``standardize``: the z-score over the
    pixels (torch's unbiased std; a map constant up to rounding becomes zeros)."""
    s = check_float_tensor(similarities, "similarities", "(n,)", dim=1)
    m = masks[:, 0] if masks.dim() == 4 else masks
    check_float_tensor(m, "masks", "(n, H, W)", dim=3)
    if len(m) != len(s):
        raise ValueError(f"similarities ({len(s)}) and masks ({len(m)}) must have one entry per mask")
    m64 = m.double()  # similarities close to 1 differ in their last digits: sum and standardise in float64
    weight = m64.sum(0)
    importance = (m64 * s.double().view(-1, 1, 1)).sum(0) / torch.where(weight > 0, weight, torch.ones_like(weight))
    if not standardize:
        return importance.to(m.dtype)
    std = importance.std()
    if not std > 1e-12 * importance.abs().max():  # constant up to rounding
        return torch.zeros_like(m[0])
    return ((importance - importance.mean()) / std).to(m.dtype)


def _cosine(reference: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(reference.expand_as(views), views, dim=1)


@checked
def perceptual_components(model, x: torch.Tensor, n_masks: int = 256, seed: int = 0, components=COMPONENTS,
                          features=None, batch_size="auto", blur_sigma: float = 3.5,
                          edge_threshold: float = 0.18, classifier=None) -> dict[str, torch.Tensor]:
    """Importance maps of the representation of each image for the ``full`` image and its ``color``,
    ``texture`` and ``shape`` components (see the module docstring), each (N, H, W), z-scored per image.

    Args:
        model: a network; its representation is the input of its final linear layer (no label is used),
            or ``features(x) -> (N, D)`` when given.
        x: images (N, C, H, W) in [0, 1], on the model's device (C = 3, or 1 without a colour map).
        n_masks: masks per image and map (the authors draw 64 x 128 = 8192 per image; cost grows linearly).
        seed: the masks (a local generator; image i draws its masks after those of images 0 .. i - 1).
        components: which maps to return (a subset of :data:`COMPONENTS`).
        batch_size: masked views per forward pass (``"auto"``, an int or None).
        blur_sigma, edge_threshold: see :func:`perceptual_views`.
        classifier: the final linear layer whose input is the representation (a module, a dotted name, or a
            tuple of heads whose outputs' mean is the logits); default found by structure.

    Costs ``n_masks`` forward passes per image and map plus 3 for the reference views; no backward pass.
    The model's modes, buffers and gradients are left as they were (eval mode inside, restored).
    """
    check_model(model)
    x = check_model_input(model, x, "x", same_device=True)
    n_masks = check_positive_int(n_masks, "n_masks")
    gen = torch.Generator().manual_seed(check_seed(seed))
    if isinstance(components, str):
        components = (components,)
    components = tuple(check_choice(c, COMPONENTS, "component") for c in components)
    if not components:
        raise ValueError("components must name at least one of " + ", ".join(COMPONENTS))
    if "color" in components and x.shape[1] == 1:
        raise ValueError("a colour map needs colour images (C = 3); drop 'color' from components")
    size = check_batch_size(batch_size, x, model=model, work=n_masks) or n_masks

    def embed(images):
        return penultimate_features(model, images, batch_size=size, features=features, classifier=classifier)

    views = perceptual_views(x, blur_sigma, edge_threshold)
    h, w = x.shape[-2:]
    maps = {c: [] for c in components}
    for i in range(len(x)):
        image, gray, blur, edges = x[i:i + 1], views["gray"][i:i + 1], views["blur"][i:i + 1], views["edges"][i:i + 1]
        full_masks = relax_masks(n_masks, (h, w), gen).to(x.device, x.dtype)
        masks = component_masks(n_masks, (h, w), gen).to(x.device, x.dtype)
        references = embed(torch.cat([image, gray, edges]))
        ref_x, ref_gray, ref_edges = references[0:1], references[1:2], references[2:3]
        if "full" in components:
            s = _cosine(ref_x, embed(image * full_masks))
            maps["full"].append(relax_importance(s, full_masks))
        if "color" in components:
            s = _cosine(ref_x, embed(masks * image + (1 - masks) * gray))
            maps["color"].append(relax_importance(s, masks))
        if "texture" in components:
            keep = ((views["strong_edges"][i:i + 1] + masks) > 0.5).to(x.dtype)
            s = _cosine(ref_gray, embed(keep * gray + (1 - keep) * blur))
            maps["texture"].append(relax_importance(s, masks))
        if "shape" in components:
            s = _cosine(ref_edges, embed(edges * masks))
            maps["shape"].append(relax_importance(s, masks))
    return {c: torch.stack(v) for c, v in maps.items()}


@checked
def map_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of maps ``a`` and ``b`` (N, H, W), image by image: (N,) in [-1, 1] (higher = the
    maps agree more). An image whose map is constant in ``a`` or ``b`` gets 0."""
    check_float_tensor(a, "a", "(N, H, W)", dim=3)
    check_float_tensor(b, "b", "(N, H, W)", dim=3)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return pearson_rows(a, b).to(a.dtype)
