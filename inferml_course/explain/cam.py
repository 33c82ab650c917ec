"""Class activation maps: Grad-CAM and the explanatory paradigms built on it.

All four maps share one skeleton (Selvaraju et al. 2017; AlRegib and Prabhushankar 2022):

1. forward the images and keep the activations A (N, K, h, w) of a ``layer`` (a convolutional map, or
   a transformer's tokens / channels-last map laid out as one: :mod:`inferml_course._core.layouts`);
2. back-propagate a scalar S to that layer: dS/dA;
3. channel weights alpha_k = spatial mean of dS/dA_k;
4. map = ReLU(sum_k w_k A_k), upsampled bilinearly (``align_corners=False``) to the input size.

They differ only in S and in the sign of the weights:

========================  =====================================  ===========================  ==============
function                  question                               scalar S                     weights
========================  =====================================  ===========================  ==============
``grad_cam``              Why P?                                 logit z_P                    +alpha
``counterfactual_cam``    What if P were absent?                 logit z_P                    -alpha
``contrast_cam``          Why P, rather than Q?                  cross-entropy(z, label Q)    +alpha
``contrast_cam``, Q = P   Why not P with 100 % confidence?       cross-entropy(z, label P)    +alpha
========================  =====================================  ===========================  ==============

Contrast-CAM back-propagates the cross-entropy loss with Q as the label, as the authors' released
code does (``olivesgatech/Explanatory-Paradigms``): its gradient with respect to the logits is
softmax(z) - onehot(Q), so every class enters through the softmax; it is *not* the logit
difference z_P - z_Q (that is only its limit when p_P is close to 1). The map depends on P only
through the network's own probabilities; ``target`` picks the default Q (the runner-up, the class
with the highest logit other than P).

Maps are raw (not min-max normalised; the authors normalise for display, which our
:func:`normalize_maps` does separately) and unsigned (after the ReLU; ``relu=False`` keeps the sign).
Cost: one forward pass and one backward pass down to ``layer`` (not to the input).

Where we differ from Captum (0.9): ``LayerGradCam`` has no ReLU by default (``relu_attributions=False``)
and returns the map at the layer's resolution; ``LayerAttribution.interpolate`` then upsamples with
*nearest* by default. We follow the paper: ReLU, then bilinear upsampling with ``align_corners=False``
(``LayerGradCam(relu_attributions=True)`` followed by ``F.interpolate(..., mode="bilinear",
align_corners=False)`` gives our ``grad_cam`` to float precision). Grad-CAM++ follows
pytorch-grad-cam's form of the paper's eq. 19 (exponential score, so only first-order gradients are needed),
except that pytorch-grad-cam adds a constant to the denominator of alpha, which changes the weights when the
gradients are small (g^2 near that constant); we set alpha = 0 only where the denominator is exactly 0.

Modes (``policy="as_is"`` of :mod:`inferml_course._core.modes`): the model runs in the mode it is
in; a dropout or batch-norm module in training mode gets one warning per call (the result is random,
batch norm mixes the samples of a batch), and every module's flag and every batch-norm statistic are
restored afterwards, also on errors.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from typing import NamedTuple

from .._core.arguments import checked
from .._core.checks import check_choice, check_labels, check_model_input, check_number, check_unit_interval
from .._core.grads import batched_grad
from .._core.images import minmax
from .._core.adapter import logits_and_feature_maps, reached, resolve_layer
from .._core.modes import guarded
from .._core.targets import as_target_tensor, output_dtype, resolve_targets
from .registry import explainer
from .maps import normalize_maps
from ..evaluate.sanity import rank_correlation

__all__ = ["grad_cam", "grad_cam_plus_plus", "counterfactual_cam", "contrast_cam", "explanatory_paradigms",
           "runner_up", "PARADIGMS", "paradigm_measures", "contrast_classes", "contrast_cotangents", "ContrastCams", "contrast_cams",
           "causal_cam", "causal_from_contrasts", "CAUSAL_FORMS"]

#: The four questions of :func:`explanatory_paradigms`, in display order.
PARADIGMS = ("Why P?", "What if not P?", "Why P, rather than Q?", "Why not P with 100% confidence?")


@checked
def runner_up(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The class with the highest logit other than ``target`` (N,); a one-class model has none (ValueError)."""
    if logits.shape[1] < 2:
        raise ValueError("a contrast class Q needs a model with at least two classes; this one has "
                         f"{logits.shape[1]} output")
    masked = logits.detach().clone()
    masked.scatter_(1, target[:, None], float("-inf"))
    return masked.argmax(1)


def _forward_at_layer(model, x, layer, method, target, contrast=None, reshape=None):
    """Check every argument, then forward ``x`` keeping the activations of ``layer``.

    Returns (x, logits, raw, to_map, P (N,), Q (N,) or None): ``raw`` is the layer's output (take
    gradients with respect to it), ``to_map`` turns it or its gradient into maps (N, k, h, w)
    (:func:`inferml_course._core.adapter.logits_and_feature_maps`); P and Q are range-checked
    against these logits.
    """
    x = check_model_input(model, x)
    n = x.shape[0]
    t = as_target_tensor(target, n, x.device)
    q = as_target_tensor(contrast, n, x.device, "contrast")
    module = resolve_layer(model, layer, x)
    logits, raw, to_map = logits_and_feature_maps(model, x, module, reshape)
    t = resolve_targets(t, logits)
    if q is not None:
        q = resolve_targets(q, logits, "contrast")
    return x, logits, raw, to_map, t, q


def _grad_maps(score, raw, to_map, retain_graph=False):
    """d score / d A as maps (N, k, h, w)."""
    (g,) = torch.autograd.grad(score, raw, retain_graph=retain_graph, allow_unused=True)
    return to_map(reached(g))


def _combine(a: torch.Tensor, weights: torch.Tensor, size, relu: bool, dtype) -> torch.Tensor:
    cam = (weights[:, :, None, None] * a).sum(1, keepdim=True)
    if relu:
        cam = cam.clamp_min(0)
    cam = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)
    return cam[:, 0].to(dtype).detach()


def _gradcam_like(model, x, target, layer, relu, method, sign, reshape):
    with torch.enable_grad():
        x, logits, raw, to_map, t, _ = _forward_at_layer(model, x, layer, method, target, reshape=reshape)
        g = _grad_maps(logits.gather(1, t[:, None]).sum(), raw, to_map)
    return _combine(to_map(raw.detach()), sign * g.mean((2, 3)), x.shape[-2:], relu, output_dtype(x))


@explainer("grad_cam", family="cam", label="Grad-CAM", order=130)
@guarded()
@checked
def grad_cam(model: nn.Module, x: torch.Tensor, target=None, layer=None, relu: bool = True,
             reshape=None) -> torch.Tensor:
    """Grad-CAM, "Why P?": ReLU(sum_k alpha_k A_k), alpha = spatial mean of d z_P / d A.

    ``layer``: a module of ``model`` or its dotted name (default ``model.cam_layer``, else found by
    structure: see :mod:`inferml_course._core.adapter`); unknown names raise a ValueError that lists
    the valid ones. Its output may be channels-first, channels-last or tokens (detected, see
    :mod:`inferml_course._core.layouts`); ``reshape`` (a callable from the layer's output to
    (N, K, h, w), pytorch-grad-cam's ``reshape_transform``) overrides the detection. The same two
    keywords are accepted by every CAM of this module. Returns (N, H, W), raw, >= 0.
    """
    return _gradcam_like(model, x, target, layer, relu, "grad_cam", 1.0, reshape)


@explainer("counterfactual_cam", family="cam", label="Counterfactual CAM", order=150)
@guarded()
@checked
def counterfactual_cam(model: nn.Module, x: torch.Tensor, target=None, layer=None,
                       relu: bool = True, reshape=None) -> torch.Tensor:
    """Counterfactual-CAM, "What if P were absent?": Grad-CAM with negated weights -alpha.

    It highlights the regions whose removal would make the network *more* confident in P
    (the evidence against P). The scalar back-propagated is still the logit z_P.
    """
    return _gradcam_like(model, x, target, layer, relu, "counterfactual_cam", -1.0, reshape)


@explainer("grad_cam_plus_plus", family="cam", label="Grad-CAM++", order=140)
@guarded()
@checked
def grad_cam_plus_plus(model: nn.Module, x: torch.Tensor, target=None, layer=None, eps: float = 0.0,
                       reshape=None) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018): pixel-weighted gradients,
    w_k = sum_ij relu(g_ij) * g_ij^2 / (2 g_ij^2 + sum_ab A_ab * g_ij^3 + eps), with the paper's
    exponential-score closed form (only first-order gradients, as in pytorch-grad-cam).

    ``eps`` = 0 follows the paper; pytorch-grad-cam adds eps = 1e-6 to the denominator, which
    changes the weights where gradients are small (``eps=1e-6`` reproduces it). Where g = 0 or the
    denominator is 0 the pixel gets no weight.
    """
    eps = check_number(eps, "eps", allow_zero=True)
    with torch.enable_grad():
        x, logits, raw, to_map, t, _ = _forward_at_layer(model, x, layer, "grad_cam_plus_plus", target,
                                                         reshape=reshape)
        g = _grad_maps(logits.gather(1, t[:, None]).sum(), raw, to_map)
    a = to_map(raw.detach())
    g2, g3 = g * g, g * g * g
    denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g3 + eps
    valid = (denom != 0) & (g != 0)
    alpha = torch.where(valid, g2 / torch.where(valid, denom, torch.ones_like(denom)), torch.zeros_like(g))
    weights = (alpha * g.clamp_min(0)).sum((2, 3))
    return _combine(a, weights, x.shape[-2:], True, output_dtype(x))


@explainer("contrast_cam", family="cam", label="Contrast-CAM", order=160)
@guarded()
@checked
def contrast_cam(model: nn.Module, x: torch.Tensor, target=None, contrast=None, layer=None,
                 relu: bool = True, reshape=None) -> torch.Tensor:
    """Contrast-CAM, "Why P, rather than Q?": back-propagate cross-entropy(z, label Q).

    Args:
        target: P (None: the predicted class); it only sets the default Q.
        contrast: Q: None (the runner-up: the highest logit other than P), an int, a sequence or a
            tensor (N,). Q = P answers "Why not P with 100 % confidence?".

    For a batch the per-image losses are summed, so every image gets exactly the gradient of the
    authors' one-image code (whose mean over a batch of one is that image's loss).
    """
    with torch.enable_grad():
        x, logits, raw, to_map, t, q = _forward_at_layer(model, x, layer, "contrast_cam", target, contrast, reshape)
        q = runner_up(logits, t) if q is None else q
        g = _grad_maps(F.cross_entropy(logits, q, reduction="sum"), raw, to_map)
    return _combine(to_map(raw.detach()), g.mean((2, 3)), x.shape[-2:], relu, output_dtype(x))


@guarded()
@checked
def explanatory_paradigms(model: nn.Module, x: torch.Tensor, target=None, contrast=None, layer=None,
                          reshape=None) -> dict:
    """The four paradigm maps of the same images from one forward pass (three backward passes).

    Returns a dict with keys :data:`PARADIGMS` (maps (N, H, W)) plus ``"P"`` and ``"Q"`` (N,) and
    ``"probs"`` (N, K), the softmax of the logits.
    """
    with torch.enable_grad():
        x, logits, raw, to_map, t, q = _forward_at_layer(model, x, layer, "explanatory_paradigms", target,
                                                         contrast, reshape)
        q = runner_up(logits, t) if q is None else q
        g_p = _grad_maps(logits.gather(1, t[:, None]).sum(), raw, to_map, retain_graph=True)
        g_q = _grad_maps(F.cross_entropy(logits, q, reduction="sum"), raw, to_map, retain_graph=True)
        g_pp = _grad_maps(F.cross_entropy(logits, t, reduction="sum"), raw, to_map)
    a, size, dtype = to_map(raw.detach()), x.shape[-2:], output_dtype(x)
    alpha = g_p.mean((2, 3))
    maps = {
        PARADIGMS[0]: _combine(a, alpha, size, True, dtype),
        PARADIGMS[1]: _combine(a, -alpha, size, True, dtype),
        PARADIGMS[2]: _combine(a, g_q.mean((2, 3)), size, True, dtype),
        PARADIGMS[3]: _combine(a, g_pp.mean((2, 3)), size, True, dtype),
    }
    maps.update(P=t, Q=q, probs=torch.softmax(logits.detach(), 1))
    return maps


@checked
def paradigm_measures(maps: dict) -> dict:
    """How far apart the four maps of :func:`explanatory_paradigms` are, per image (lesson 03).

    Returns numpy arrays (N,): ``rho``, the rank correlation of the Grad-CAM and Contrast-CAM maps (1: the
    same ranking of pixels; :func:`inferml_course.evaluate.rank_correlation`); ``empty``, whether the
    Counterfactual-CAM map is all zero; ``strength``, the raw maximum of the Q = P map; ``hesitation``,
    1 - p_P for the explained class P.
    """

    probs, p = maps["probs"].detach().cpu(), maps["P"].detach().cpu()
    peak = {k: maps[k].detach().flatten(1).amax(1).cpu() for k in PARADIGMS}
    return {"rho": rank_correlation(maps[PARADIGMS[0]].detach().cpu(), maps[PARADIGMS[2]].detach().cpu()).numpy(),
            "empty": (peak[PARADIGMS[1]] == 0).numpy(),
            "strength": peak[PARADIGMS[3]].numpy(),
            "hesitation": (1 - probs.gather(1, p[:, None])[:, 0]).numpy()}


# --- every contrast at once: VOICE and CausalCAM ---------------------------------------------------------

@checked
def contrast_classes(prediction: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Every class except P, in increasing order: (N, K - 1) for predictions P (N,)."""
    if num_classes < 2:
        raise ValueError(f"a contrast class Q needs a model with at least two classes; this one has {num_classes}")
    check_labels(prediction, "prediction", len(prediction), num_classes)
    idx = torch.arange(num_classes - 1, device=prediction.device)[None]
    return idx + (idx >= prediction[:, None]).long()


@checked
def contrast_cotangents(probs: torch.Tensor, prediction: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """(K, N, K) gradients with respect to the logits: slot 0 is onehot(P) (Grad-CAM's z_P), slot j >= 1
    is softmax - onehot(Q_j) (Contrast-CAM's cross-entropy with label Q_j); ``others`` (N, K - 1)."""
    k = probs.shape[1]
    eye = torch.eye(k, device=probs.device, dtype=probs.dtype)
    contrast = probs.unsqueeze(0) - eye[others.t()]          # (K - 1, N, K)
    return torch.cat([eye[prediction].unsqueeze(0), contrast])


class ContrastCams(NamedTuple):
    """What :func:`contrast_cams` returns (raw maps at input resolution).

    * ``explanation`` (N, H, W): Grad-CAM of P; ``contrast_maps`` (N, K - 1, H, W): Contrast-CAM of
      each Q in ``contrast`` (N, K - 1), every class but P in increasing order;
    * ``prediction`` (N,): P; ``probs`` (N, K): the softmax of the logits.
    """

    explanation: torch.Tensor
    contrast_maps: torch.Tensor
    contrast: torch.Tensor
    prediction: torch.Tensor
    probs: torch.Tensor


@guarded()
@checked
def contrast_cams(model: nn.Module, x: torch.Tensor, target=None, layer=None, reshape=None,
                  vectorize: bool | None = None) -> ContrastCams:
    """Grad-CAM of P and Contrast-CAM of every class Q != P from one forward pass and one backward pass
    vectorised over the K cotangents (:func:`contrast_cotangents`; ``vectorize`` as in
    :func:`inferml_course._core.grads.batched_grad`, default vectorised: the backward only crosses the
    head). Each map equals :func:`grad_cam` / :func:`contrast_cam` with that Q. ``layer`` and ``reshape``
    as in :func:`grad_cam`."""
    with torch.enable_grad():
        x, logits, raw, to_map, p, _ = _forward_at_layer(model, x, layer, "contrast_cams", target, reshape=reshape)
        n = x.shape[0]
        probs = torch.softmax(logits.detach(), 1)
        others = contrast_classes(p, logits.shape[1])
        go = contrast_cotangents(probs, p, others).to(logits.dtype)
        g = reached(batched_grad(logits, raw, go, True if vectorize is None else vectorize))
    a = to_map(raw.detach())                                  # (N, ch, h, w)
    weights = to_map(g.flatten(0, 1)).mean((2, 3)).view(g.shape[0], n, -1)  # (K, N, ch)
    cam = (weights[..., None, None] * a.unsqueeze(0)).sum(2).clamp_min(0)  # (K, N, h, w)
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False).to(output_dtype(x))
    return ContrastCams(cam[0].detach(), cam[1:].transpose(0, 1).detach(), others, p, probs.to(output_dtype(x)))


#: The readings of CausalCAM's set operation that :func:`causal_from_contrasts` implements.
CAUSAL_FORMS = ("set", "soft")


@checked
def causal_from_contrasts(maps: ContrastCams, form: str = "set", threshold: float | None = None,
                          contrast_threshold: float | None = None) -> torch.Tensor:
    """CausalCAM's causal map (N, H, W) from the output of :func:`contrast_cams`, in one of two readings of
    the paper's set operation "Grad-CAM's regions minus the union of the contrast regions". Every map is
    min-max normalised per image first (``gc`` for Grad-CAM of P, ``c_Q`` for Contrast-CAM of each Q != P).

    * ``form="set"`` (crisp sets): mask = bin(gc) and not (or_Q bin(c_Q)), bin(m) = m > ``threshold``
      (default 0.5, our choice: the paper gives no number); ``contrast_threshold`` (None: ``threshold``)
      binarises the contrast maps alone. Returns Grad-CAM's raw values on the mask and 0 elsewhere.
    * ``form="soft"`` (fuzzy sets, no threshold): max(0, gc - max_Q c_Q), the Lukasiewicz difference of gc
      and the union (pointwise maximum) of the c_Q. Returns values in [0, 1]; 0 wherever some contrast map
      reaches Grad-CAM's level.
    """
    form = check_choice(form, CAUSAL_FORMS, "form")
    if not isinstance(maps, ContrastCams):
        raise TypeError(f"maps must be the ContrastCams that contrast_cams returns, got {type(maps).__name__}")
    n, q, h, w = maps.contrast_maps.shape
    if form == "soft":
        if threshold is not None or contrast_threshold is not None:
            raise ValueError("form='soft' has no threshold; leave threshold and contrast_threshold at None")
        contrast = minmax(maps.contrast_maps.reshape(n * q, h, w)).view(n, q, h, w)   # in the maps' dtype
        return (minmax(maps.explanation) - contrast.amax(1)).clamp_min(0)
    grad = normalize_maps(maps.explanation, "minmax")
    contrast = normalize_maps(maps.contrast_maps.reshape(n * q, h, w), "minmax").view(n, q, h, w)
    threshold = 0.5 if threshold is None else check_unit_interval(threshold, "threshold")
    contrast_threshold = threshold if contrast_threshold is None else \
        check_unit_interval(contrast_threshold, "contrast_threshold")
    mask = (grad > threshold) & ~(contrast > contrast_threshold).any(1)
    return maps.explanation * mask


@guarded()
@checked
def causal_cam(model: nn.Module, x: torch.Tensor, target=None, layer=None, threshold: float | None = None,
               contrast_threshold: float | None = None, form: str = "set", reshape=None,
               vectorize: bool | None = None) -> torch.Tensor:
    """CausalCAM (Prabhushankar and AlRegib, ICIP 2021): Grad-CAM's regions minus the contrast regions.

    The causal features of P are those of Grad-CAM that do not also let P be told apart from some other
    class; the contrast (context) region is the union over every Q != P of Contrast-CAM's regions.
    ``form="set"`` (default): with each map min-max normalised and binarised at ``threshold`` (default 0.5,
    our choice, the paper gives no number), mask = bin(Grad-CAM_P) and not (or_Q bin(Contrast-CAM_{P,Q})),
    bin(m) = m > threshold; ``contrast_threshold`` (None: ``threshold``) binarises the contrast maps alone,
    so a looser contrast region can be tried (lesson 10). Returns Grad-CAM's raw values on that mask and 0
    elsewhere (N, H, W), so the map ranks pixels as Grad-CAM does inside the causal region.
    ``form="soft"``: the threshold-free reading max(0, Grad-CAM_P - max_Q Contrast-CAM_{P,Q}) of the
    normalised maps (see :func:`causal_from_contrasts`). On a near-certain model every Contrast-CAM looks
    like Grad-CAM and the causal region can be empty in either reading (lesson 10).
    Cost: that of :func:`contrast_cams`.
    """
    form = check_choice(form, CAUSAL_FORMS, "form")
    if form == "set":   # check the thresholds before the backward pass
        for value, name in ((threshold, "threshold"), (contrast_threshold, "contrast_threshold")):
            if value is not None:
                check_unit_interval(value, name)
    elif threshold is not None or contrast_threshold is not None:
        raise ValueError("form='soft' has no threshold; leave threshold and contrast_threshold at None")
    maps = contrast_cams(model, x, target, layer, reshape, vectorize)
    return causal_from_contrasts(maps, form, threshold, contrast_threshold)
