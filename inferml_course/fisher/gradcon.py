"""GradCon's anomaly score (Kwon et al., ECCV 2020): directional information from backpropagated gradients.

An autoencoder trained on inliers with the gradient-alignment constraint
(:mod:`inferml_course.models.gradcon`) keeps, for each of its 4 decoder weights W_i, the running average
g_bar_i of its training gradients. At inference, for one image x, GradCon backpropagates that image's
reconstruction loss L_rec(x) (the mean squared error over its pixels) and compares the direction of each
decoder gradient with the training average:

    score(x) = -L_rec(x) + beta * (1/L) sum_i cos(vec dL_rec(x)/dW_i, vec g_bar_i),   beta = 0.12

**Higher means more inlier-like** (the paper's quantity, :func:`gradcon_score`); :func:`gradcon_anomaly_score`
is its negative, so that, like every score of the course, higher means more anomalous. The baseline is the
reconstruction error alone, :func:`reconstruction_error` (higher = more anomalous).

The authors score one image at a time (batch size 1, ordinary ``backward``); here the per-image gradients
come from :mod:`torch.func` (``vmap`` of ``grad`` over the batch), which gives the same numbers without a
loop. The parameters are detached copies, so ``requires_grad``, ``.grad``, the mode and the buffers of the
model are never touched. Images are resized to the model's 28 x 28 with
:func:`inferml_course.models.gradcon.to_gradcon_input` (our choice, see there).

===========================  ======================================================================
function                     returns
===========================  ======================================================================
``gradcon_components``       ``GradConComponents``: reconstruction error (N,), cosines (N, L)
``gradcon_score``            (N,) ``-L_rec + beta * mean cosine``, higher = more inlier-like
``gradcon_anomaly_score``    (N,) ``-gradcon_score``, higher = more anomalous
``reconstruction_error``     (N,) ``L_rec``, higher = more anomalous (the baseline)
``one_class_split``          the paper's test split: every inlier + as many outliers from other classes
===========================  ======================================================================
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from .._core.arguments import checked
from .._core.batching import batches, check_batch_size
from .._core.checks import check_int_range, check_model, check_model_input, check_number, check_seed
from .._core.directions import SCORE, register
from ..models.gradcon import GradConCAE, to_gradcon_input

__all__ = ["GradConComponents", "gradcon_components", "gradcon_score", "gradcon_anomaly_score",
           "reconstruction_error", "one_class_split", "BETA"]

#: beta of the score, the default of the authors' ``eval.py``
BETA = 0.12

register("gradcon_score", True, quantity="GradCon score -L_rec + beta * mean cosine (inlier-likeness)",
         family="fisher.gradcon", kind=SCORE)
register("gradcon_anomaly_score", False, quantity="negative GradCon score (anomaly score)",
         family="fisher.gradcon", kind=SCORE)
register("reconstruction_error", False, quantity="autoencoder reconstruction error (mean squared)",
         family="fisher.gradcon", kind=SCORE)


class GradConComponents(NamedTuple):
    """The two parts of GradCon's score for a batch of N images."""

    reconstruction_error: torch.Tensor  # (N,) mean squared error of each image, L_rec(x)
    cosines: torch.Tensor               # (N, L) cos(dL_rec(x)/dW_i, g_bar_i) for each decoder weight i


def _check(model, x) -> torch.Tensor:
    check_model(model)
    if not isinstance(model, GradConCAE):
        raise TypeError(f"model must be a GradConCAE (inferml_course.models.gradcon), got {type(model).__name__}")
    x = check_model_input(model, x, "x", same_device=True)
    if x.shape[1] != model.in_channels:
        raise ValueError(f"x must have {model.in_channels} channels for this model, got shape {tuple(x.shape)}")
    if int(model.reference_count) == 0:
        raise ValueError("the model has no reference gradients (reference_count = 0): train it with "
                         "train_gradcon or load it from the zoo")
    return to_gradcon_input(x)


@checked
def gradcon_components(model: GradConCAE, x: torch.Tensor, batch_size="auto") -> GradConComponents:
    """Reconstruction error (N,) and the L = 4 decoder-gradient cosines (N, L) of each image of ``x``.

    Args:
        model: a trained :class:`~inferml_course.models.gradcon.GradConCAE` (its reference gradients set).
        x: images (N, C, H, W) in [0, 1] on the model's device (resized to 28 x 28).
        batch_size: images per vectorised pass (``"auto"``, an int, or None for one pass).
    """
    x = _check(model, x)
    size = check_batch_size(batch_size, x)
    names = model.decoder_weight_names
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    reference = [r.detach() for r in model.reference_gradients()]

    def loss(decoder, image):
        recon = functional_call(model, ({**params, **decoder}, buffers), (image[None],))
        rec = F.mse_loss(recon, image[None])
        return rec, rec

    per_image = vmap(grad(loss, has_aux=True), in_dims=(None, 0))
    recs, cosines = [], []
    for chunk in batches(x, size):
        grads, rec = per_image({k: params[k] for k in names}, chunk)
        cos = torch.stack([F.cosine_similarity(grads[k].flatten(1), r.flatten()[None].to(grads[k].dtype), dim=1)
                           for k, r in zip(names, reference)], dim=1)
        recs.append(rec.detach())
        cosines.append(cos.detach())
    return GradConComponents(torch.cat(recs), torch.cat(cosines))


@checked
def gradcon_score(model: GradConCAE, x: torch.Tensor, beta: float = BETA, batch_size="auto") -> torch.Tensor:
    """The paper's score ``-L_rec(x) + beta * mean_i cos_i(x)``, shape (N,); **higher = more inlier-like**.

    ``beta`` weights the directional term (0.12 in the authors' evaluation; ``beta=0`` leaves ``-L_rec``)."""
    beta = check_number(beta, "beta", allow_zero=True)
    parts = gradcon_components(model, x, batch_size)
    return -parts.reconstruction_error + beta * parts.cosines.mean(1)


@checked
def gradcon_anomaly_score(model: GradConCAE, x: torch.Tensor, beta: float = BETA, batch_size="auto") -> torch.Tensor:
    """``-gradcon_score``, shape (N,): higher = more anomalous (the course's direction for scores)."""
    return -gradcon_score(model, x, beta, batch_size)


@checked
def reconstruction_error(model: GradConCAE, x: torch.Tensor, batch_size="auto") -> torch.Tensor:
    """The baseline ``L_rec(x)``, the mean squared reconstruction error of each image, shape (N,);
    higher = more anomalous. One forward pass per batch, no gradients."""
    check_model(model)
    if not isinstance(model, GradConCAE):
        raise TypeError(f"model must be a GradConCAE (inferml_course.models.gradcon), got {type(model).__name__}")
    x = to_gradcon_input(check_model_input(model, x, "x", same_device=True))
    check_batch_size(batch_size)
    with torch.no_grad():
        return torch.cat([(model(chunk) - chunk).pow(2).flatten(1).mean(1)
                          for chunk in batches(x, batch_size, model=model)])


@checked
def one_class_split(images: torch.Tensor, labels: torch.Tensor, inlier: int, seed: int = 0):
    """The paper's one-class test split: every image of class ``inlier`` and an equal number of outliers drawn
    without replacement from the other classes (outlier ratio 50 %).

    Args:
        images: (N, C, H, W); labels: (N,) integer classes; inlier: the inlier class.
        seed: the draw of the outliers (local generator).

    Returns:
        ``(images, is_outlier)``: the selected images (M, C, H, W), inliers first, and a (M,) bool tensor.
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype.is_floating_point:
        raise ValueError("labels must be an integer tensor of shape (N,)")
    if not isinstance(images, torch.Tensor) or len(images) != len(labels):
        raise ValueError(f"images must be a tensor with one row per label ({len(labels)}), got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    check_int_range(inlier, 0, int(labels.max()), "inlier")
    seed = check_seed(seed)
    inside = (labels == inlier).nonzero()[:, 0]
    others = (labels != inlier).nonzero()[:, 0]
    if len(inside) == 0 or len(others) < len(inside):
        raise ValueError(f"class {inlier} needs at least one image and as many images of other classes")
    gen = torch.Generator().manual_seed(seed)
    chosen = others[torch.randperm(len(others), generator=gen)[:len(inside)].to(others.device)]
    index = torch.cat([inside, chosen])
    is_outlier = torch.cat([torch.zeros(len(inside), dtype=torch.bool), torch.ones(len(chosen), dtype=torch.bool)])
    return images[index], is_outlier.to(images.device)
