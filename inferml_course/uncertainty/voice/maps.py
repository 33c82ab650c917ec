"""Uncertainty *in* explanations: VOICE (Prabhushankar and AlRegib, J-STSP 2024).

An explanation answers one question ("Why P?"). The features it leaves out are exactly what the
contrastive questions "Why P, rather than Q?" pick up for the other classes Q. VOICE (Variance Of
Induced Contrastive Explanations) measures how much those contrastive answers disagree: the
**uncertainty map** of an explanation is the pixel-wise variance over the contrast explanations of
*every* class Q != P, each min-max normalised first.

``voice(model, x)`` returns the explanation, the uncertainty map and the contrast maps for two
explainers, as in the authors' code (``olivesgatech/VOICE-Uncertainty``):

=================  =================================  ==========================================
``explainer``      explanation E ("Why P?")           contrast map C_Q ("Why P, rather than Q?")
=================  =================================  ==========================================
``"contrast_cam"`` Grad-CAM of the logit z_P          Contrast-CAM: Grad-CAM weights of the
                                                      cross-entropy loss with label Q
``"smoothgrad"``   SmoothGrad of z_P                  SmoothGrad of the cross-entropy with label Q
=================  =================================  ==========================================

Then U = minmax(var_Q minmax(C_Q)) (unbiased variance over the K - 1 contrast classes, as
``torch.var``), and E = minmax(E).

**Batched over contrast classes.** The gradient of the cross-entropy with label Q with respect to
the logits is softmax(z) - onehot(Q), so every contrast map is one backward pass with a different
``grad_outputs``. We stack the K - 1 of them (plus onehot(P) for E) after one forward pass and run
a single vectorised backward (``torch.autograd.grad(..., is_grads_batched=True)``), with no Python
loop over classes. For Contrast-CAM the backward only goes down to the CAM layer (the head of the
network) and is always vectorised by default. For SmoothGrad it goes down to the noisy inputs; on
CPUs PyTorch loops inside the vectorised call for the convolution backward and copies more, so
there the default runs the stacked ``grad_outputs`` one by one on the retained graph, which is
faster (see :func:`voice`).

Metrics (both on normalised maps, per image, **higher = more uncertain explanation** as in the paper):

* :func:`explanation_overlap` (the paper's "IoU"): the intersection over union of the thresholded
  explanation and the thresholded uncertainty, ``(|E>t & U>t| + 1e-6) / (|E>t or U>t| + 1e-6)`` with
  t = 0.1 by default (the authors hard-code 0.1 and advise adapting it); lower is better, unlike
  :func:`inferml_course.evaluate.iou`, hence its own name;
* :func:`snr`: mean(U) / std(U) over the pixels (population std), 0 for a constant map.

Where we differ from the authors' code, and why:

* min-max normalisation adds no epsilon in their code (a constant map gives NaN); ours maps a
  constant map to 0 (the explain package's :func:`~inferml_course.explain.normalize_maps`);
* their SmoothGrad variant draws noise with standard deviation sigma^2 (a typo-like quirk), uses
  sigma = 5 / (max - min) of the *normalised* input and clips each map at its 99th percentile; we use
  the course's SmoothGrad (:func:`inferml_course.explain.smoothgrad`: noise std = ``noise`` times
  each image's value range, signed gradients averaged, then ``channels`` reduction, default the
  sum of absolute values as in VOICE) and min-max normalisation (``normalization="percentile"`` gives
  the 99th-percentile rule);
* the authors run one image at a time with a Python loop over the 999 ImageNet classes; we batch
  images and classes. The numbers equal a loop over classes calling the explain package
  (tested).

Modes (``policy="as_is"`` of :mod:`inferml_course._core.modes`): the model runs in the mode it is
in; a dropout or batch-norm module in training mode gets one warning per call (the result is random,
batch norm mixes the samples of a batch), and every module's flag and every batch-norm statistic are
restored afterwards, also on errors.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..._core.arguments import checked
from ..._core.checks import check_choice, check_float_tensor, check_model_input, check_number, check_positive_int, \
    check_seed
from ..._core.modes import guarded
from ..._core.batching import check_batch_size
from ..._core.images import reduce_channels
from ..._core.paths import noise_sigma, noisy_points
from ..._core.perturb import chunk_rule
from ..._core.targets import as_target_tensor, check_model_output, output_dtype, resolve_targets
from ..._core.grads import batched_grad
from ..._core.directions import register
from ...explain.cam import contrast_cams, contrast_classes, contrast_cotangents
from ...explain.maps import normalize_maps

__all__ = ["VoiceResult", "voice", "voice_map", "contrast_classes", "batched_grad", "explanation_overlap", "snr",
           "voice_stats",
           "EXPLAINERS",
           "NORMALIZATIONS"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('explanation_overlap', False, quantity='VOICE: IoU of the thresholded explanation and its uncertainty map (higher = a less trustworthy explanation)', family="uncertainty.voice")
register('snr', False, quantity='VOICE: mean / std of the uncertainty map (higher = a less trustworthy prediction)', family="uncertainty.voice")

#: Explainers VOICE can wrap.
EXPLAINERS = ("contrast_cam", "smoothgrad")
#: Per-map normalisations of the contrast maps.
NORMALIZATIONS = ("minmax", "percentile")


class VoiceResult(NamedTuple):
    """What :func:`voice` returns (all on the input's device, maps at input resolution).

    * ``explanation`` (N, H, W): the "Why P?" map, min-max normalised to [0, 1];
    * ``uncertainty`` (N, H, W): the VOICE map, min-max normalised unless ``scale_uncertainty=False``;
    * ``contrast_maps`` (N, K - 1, H, W): the normalised contrast maps, one per class in ``contrast``;
    * ``contrast`` (N, K - 1): the contrast classes Q (every class but P, in increasing order);
    * ``prediction`` (N,): P; ``probs`` (N, K): the softmax of the clean logits.
    """

    explanation: torch.Tensor
    uncertainty: torch.Tensor
    contrast_maps: torch.Tensor
    contrast: torch.Tensor
    prediction: torch.Tensor
    probs: torch.Tensor


def _normalize(maps: torch.Tensor, normalization: str) -> torch.Tensor:
    shape = maps.shape
    flat = maps.reshape(-1, *shape[-2:])
    out = normalize_maps(flat, "minmax") if normalization == "minmax" else normalize_maps(flat, "percentile")
    return out.clamp_min(0).view(shape).to(maps.dtype)


def _cam_maps(model, x, target, layer, vectorize, reshape):
    """Grad-CAM of P and Contrast-CAM of every Q != P, raw: (K, N, H, W), plus P, Q, probs."""
    maps = contrast_cams(model, x, target, layer, reshape, vectorize)
    cam = torch.cat([maps.explanation.unsqueeze(0), maps.contrast_maps.transpose(0, 1)])
    return cam, maps.prediction, maps.contrast, maps.probs


def _smoothgrad_maps(model, x, target, samples, noise, seed, channels, batch_size, vectorize):
    """SmoothGrad of z_P and of the cross-entropy with every label Q != P: (K, N, H, W), P, Q, probs."""
    n = x.shape[0]
    t = as_target_tensor(target, n, x.device)
    with torch.no_grad():  # the clean forward pass: P (target=None) and the range check of targets
        logits = check_model_output(model(x.detach()), n)
    p = resolve_targets(t, logits)
    k = logits.shape[1]
    probs = torch.softmax(logits, 1)
    others = contrast_classes(p, k)
    point = noisy_points(x, noise_sigma(x, noise), check_seed(seed))  # SmoothGrad's noisy copies
    step = chunk_rule(batch_size, n, samples)
    total = torch.zeros((k, *x.shape), device=x.device, dtype=x.dtype)
    with torch.enable_grad():
        for start in range(0, samples, step):
            ks = list(range(start, min(samples, start + step)))
            s = len(ks)
            inp = point(ks).requires_grad_(True)
            out = check_model_output(model(inp), inp.shape[0])
            q = torch.softmax(out.detach(), 1)               # each noisy copy's own probabilities
            go = contrast_cotangents(q, p.repeat(s), others.repeat(s, 1)).to(out.dtype)
            g = batched_grad(out, inp, go, vectorize)
            total += g.view(k, s, *x.shape).sum(1)
    maps = reduce_channels((total / samples).reshape(-1, *x.shape[1:]), channels).view(k, n, *x.shape[-2:])
    return maps, p, others, probs


@guarded()
@checked
def voice(model: nn.Module, x: torch.Tensor, target=None, explainer: str = "contrast_cam", layer=None,
          samples: int = 10, noise: float = 0.15, seed: int = 0, channels: str = "abs",
          normalization: str = "minmax", scale_uncertainty: bool = True, batch_size: int | None = None,
          vectorize: bool | None = None, reshape=None) -> VoiceResult:
    """VOICE: the explanation of P and its uncertainty map, the variance of the contrast maps over
    every class Q != P (see the module docstring).

    Args:
        target: P, the class to explain (None: the predicted class).
        explainer: ``"contrast_cam"`` (Grad-CAM / Contrast-CAM at ``layer``, default
            ``model.cam_layer`` or found by structure; ``reshape`` as in
            :func:`inferml_course.explain.grad_cam`, for token or channels-last layers) or
            ``"smoothgrad"`` (``samples`` noisy copies with noise
            ``noise`` times each image's value range, seeded by ``seed``; ``channels`` reduces the
            averaged gradient: ``"abs"`` (default, VOICE's sum of absolute values) or ``"max_abs"``).
        normalization: per contrast map, ``"minmax"`` (the paper) or ``"percentile"`` (scale by the
            99th percentile and clip, the authors' SmoothGrad display rule).
        scale_uncertainty: min-max normalise the uncertainty map (the paper does; ``False`` keeps the raw
            variance, e.g. to compare magnitudes across images).
        batch_size: SmoothGrad only: the most noisy images per forward pass (None: all at once; ``"auto"``:
            :mod:`inferml_course._core.batching`).
        vectorize: run the K backward passes as one vectorised call (``is_grads_batched=True``);
            ``False`` loops over them on one retained graph. ``None`` (default): vectorised for
            Contrast-CAM (the backward only crosses the head) and, for SmoothGrad, on GPUs only:
            on CPUs PyTorch 2.x loops inside vmap for the convolution backward and copies more, so
            the plain loop is faster there (about 1.8x, ``benchmarks/bench_attribution.py``). The
            numbers are the same either way.

    Cost: ``"contrast_cam"``: one forward pass and one backward pass vectorised over the K classes,
    down to ``layer`` only. ``"smoothgrad"``: one forward pass on x plus ``samples`` forward passes
    and a vectorised backward over the K classes for each noisy copy. Hygiene as in the explain
    package: gradients via ``torch.autograd.grad``, hooks removed even on errors.
    """
    x = check_model_input(model, x)
    check_choice(explainer, EXPLAINERS, "explainer")
    check_choice(normalization, NORMALIZATIONS, "normalization")
    # SmoothGrad's options are checked for either explainer: a wrong value is a mistake even where unused
    check_choice(channels, ("abs", "max_abs"), "channels")
    check_positive_int(samples, "samples")
    check_batch_size(batch_size)
    noise = check_number(noise, "noise", allow_zero=True)
    if explainer == "contrast_cam":
        raw, p, others, probs = _cam_maps(model, x, target, layer, vectorize, reshape)
    else:
        if reshape is not None or layer is not None:
            raise ValueError("layer= and reshape= apply to explainer='contrast_cam' only; SmoothGrad works on the "
                             "input pixels")
        batch_size = check_batch_size(batch_size, x, model=model, work=samples * x.shape[0], backward=True)
        raw, p, others, probs = _smoothgrad_maps(model, x, target, samples, noise, seed, channels, batch_size,
                                                  vectorize)
    dtype = output_dtype(x)
    explanation = normalize_maps(raw[0], "minmax").to(dtype)
    contrast = _normalize(raw[1:].transpose(0, 1), normalization).to(dtype)   # (N, K - 1, H, W)
    if contrast.shape[1] > 1:
        variance = contrast.var(1)
    else:
        variance = torch.zeros_like(contrast[:, 0])
    uncertainty = normalize_maps(variance, "minmax").to(dtype) if scale_uncertainty else variance
    return VoiceResult(explanation.detach(), uncertainty.detach(), contrast.detach(), others, p, probs.to(dtype))


@guarded()
@checked
def voice_map(model: nn.Module, x: torch.Tensor, target=None, **options) -> torch.Tensor:
    """Only the VOICE uncertainty map (N, H, W): the explainer-style signature of :func:`voice`."""
    return voice(model, x, target, **options).uncertainty


# --- metrics -----------------------------------------------------------------------------------------------

def _check_map(m, argument):
    return check_float_tensor(m, argument, "(N, H, W)", dim=3)


@checked
def explanation_overlap(explanation: torch.Tensor, uncertainty: torch.Tensor, threshold: float = 0.1
                        ) -> torch.Tensor:
    """VOICE's IoU between the explanation and its uncertainty map, per image (N,).

    Both maps (N, H, W), normalised to [0, 1] (as :func:`voice` returns them), are binarised with
    ``> threshold``; IoU = (|E & U| + 1e-6) / (|E or U| + 1e-6), the authors' smoothing (two empty
    maps give 1). **Higher = the uncertainty overlaps the evidence more = a less trustworthy
    explanation** (the paper finds it higher on wrong predictions): lower is better, the opposite of
    :func:`inferml_course.evaluate.iou` (a map against a ground-truth mask, higher is better), hence
    its own name (the paper calls it IoU; registered as ``"explanation_overlap"`` in the package's
    direction registry).
    """
    explanation = _check_map(explanation, "explanation")
    uncertainty = _check_map(uncertainty, "uncertainty")
    if explanation.shape != uncertainty.shape:
        raise ValueError(f"explanation and uncertainty must have the same shape, got {tuple(explanation.shape)} "
                         f"and {tuple(uncertainty.shape)}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    e, u = explanation > threshold, uncertainty.to(explanation.device) > threshold
    inter = (e & u).flatten(1).sum(1).double()
    union = (e | u).flatten(1).sum(1).double()
    return ((inter + 1e-6) / (union + 1e-6)).float()


@checked
def snr(uncertainty: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio of an uncertainty map, mean / std over its pixels (population std), per
    image (N,); 0 for a constant map. **Higher = the uncertainty is spread more evenly over the
    image** (the paper reads it as a less trustworthy prediction)."""
    u = _check_map(uncertainty, "uncertainty").flatten(1).double()
    mean, std = u.mean(1), u.std(1, correction=0)
    return torch.where(std > 0, mean / torch.where(std > 0, std, torch.ones_like(std)),
                       torch.zeros_like(std)).float()


@checked
def voice_stats(result: VoiceResult, threshold: float = 0.1) -> dict:
    """``{"explanation_overlap": (N,), "snr": (N,)}`` of a :func:`voice` result (both higher = more
    uncertain, so lower is better; see :func:`explanation_overlap`)."""
    if not isinstance(result, VoiceResult):
        raise TypeError(f"result must be a VoiceResult from voice(), got {type(result).__name__}")
    return {"explanation_overlap": explanation_overlap(result.explanation, result.uncertainty, threshold),
            "snr": snr(result.uncertainty)}
