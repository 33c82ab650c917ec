"""The perturb-and-score engine: check the input, one forward pass, score perturbed images in chunks.

Used by occlusion, RISE, LIME and Kernel SHAP (explain), the insertion / deletion, masking and structure
games (evaluate), SHAPE and the do-interventions (intervene). An algorithm only says how to build its
perturbed images; this module checks, chunks, runs and scores them.

**The dtype rule** (every public function that takes images and a model): images of any floating dtype
(float16, bfloat16, float32, float64) and any memory layout (contiguous or channels-last) are accepted;
they are cast to the dtype of the model's first floating parameter (:func:`.checks.check_model_input`),
so the model runs in its own dtype; maps and scores come back in :func:`.targets.output_dtype` of that
(float64 for a float64 model, float32 otherwise). float64 images that are float32 values cast up give
the same numbers as the float32 images.

**The chunk rule** (:func:`chunk_rule`): a job of ``per`` images (one perturbation of N images, one
path point, one noisy copy) goes ``max(1, batch_size // per)`` jobs to a forward pass; ``None`` is every
job in one pass. Chunks run through :func:`.adapter.forward_images` (channels-last on a CPU).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import nn

from .adapter import forward_images
from .checks import check_choice, check_model_input
from .targets import as_target_tensor, check_model_output, resolve_targets, scores_from_logits

__all__ = ["OUTPUTS", "FirstPass", "chunk_rule", "first_pass", "logit_jobs", "score_jobs", "masked_scores"]

#: The class score the perturbation methods and games read: the softmax probability or the raw logit.
OUTPUTS = ("probability", "logit")


class FirstPass(NamedTuple):
    """What :func:`first_pass` returns: ``x`` (N, C, H, W) in the model's dtype, ``target`` (N,),
    ``score`` (N,) of the target on ``x``, ``prediction`` (N,) on ``x``."""

    x: torch.Tensor
    target: torch.Tensor
    score: torch.Tensor
    prediction: torch.Tensor


def chunk_rule(batch_size: int | None, per: int, total: int) -> int:
    """Jobs per forward pass when a job is ``per`` images: ``max(1, batch_size // per)``, at most ``total``;
    ``batch_size=None`` (resolved, see :mod:`.batching`) is all ``total`` jobs at once."""
    if batch_size is None:
        return max(total, 1)
    return max(1, min(total, batch_size // per))


def first_pass(model: nn.Module, x, target, output: str) -> FirstPass:
    """Check ``x`` (dtype rule above) and ``output``, run the model once on ``x`` and resolve the targets
    on that pass (``target=None``: the predicted class). Call it inside the public function's mode guard."""
    x = check_model_input(model, x, "x")
    check_choice(output, OUTPUTS, "output")
    t = as_target_tensor(target, x.shape[0], x.device)
    logits = check_model_output(forward_images(model, x), x.shape[0])
    t = resolve_targets(t, logits)
    return FirstPass(x, t, scores_from_logits(logits, output).gather(1, t[:, None])[:, 0], logits.argmax(1))


def _logit_chunks(model, total, build, batch_size, per):
    """(a, b, logits ((b - a) * per, K)) for the chunks of :func:`chunk_rule`, checked."""
    step = chunk_rule(batch_size, per, total)
    for a in range(0, total, step):
        b = min(total, a + step)
        images = build(a, b)
        yield a, b, check_model_output(forward_images(model, images), images.shape[0])


def logit_jobs(model: nn.Module, total: int, build: Callable, batch_size: int | None, per: int = 1) -> torch.Tensor:
    """Logits (total * per, K) of the images of ``total`` jobs (``build``, chunks: as :func:`score_jobs`)."""
    return torch.cat([logits for _, _, logits in _logit_chunks(model, total, build, batch_size, per)])


def score_jobs(model: nn.Module, total: int, build: Callable, targets: torch.Tensor, output: str,
               batch_size: int | None, per: int = 1, want_prediction: bool = False):
    """Scores (total * per,) of the images of ``total`` jobs of ``per`` images each.

    ``build(a, b)`` returns the images of jobs a..b-1, ((b - a) * per, C, H, W); ``targets``
    (total * per,) the class read from each image, in the same order. Chunks: :func:`chunk_rule`.
    With ``want_prediction`` also the predicted classes (total * per,).
    """
    scores, predicted = [], []
    for a, b, logits in _logit_chunks(model, total, build, batch_size, per):
        scores.append(scores_from_logits(logits, output).gather(1, targets[a * per:b * per, None])[:, 0])
        if want_prediction:
            predicted.append(logits.argmax(1))
    s = torch.cat(scores) if scores else torch.zeros(0)
    if want_prediction:
        return s, (torch.cat(predicted) if predicted else torch.zeros(0, dtype=torch.long))
    return s


def masked_scores(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, masks: Callable, count: int,
                  base: torch.Tensor, output: str, batch_size: int | None) -> torch.Tensor:
    """Scores (count, N) of ``count`` masked versions of the images ``x`` (N, C, H, W).

    ``masks(a, b)`` returns the masks of versions a..b-1, (b - a, N or 1, H, W): values in [0, 1] blend
    ``base + m (x - base)`` (RISE, LIME, Kernel SHAP); booleans keep ``x`` where True and ``base`` elsewhere
    (occlusion). ``base`` (N, C, H, W) is what a removed pixel becomes; ``targets`` (N,).
    """
    n = x.shape[0]

    def build(a, b):
        m = masks(a, b)[:, :, None]  # (p, N or 1, 1, H, W)
        if m.dtype == torch.bool:
            images = torch.where(m, x, base)
        else:
            images = base.unsqueeze(0) + m * (x.unsqueeze(0) - base.unsqueeze(0))
        return images.reshape(-1, *x.shape[1:])

    return score_jobs(model, count, build, targets.repeat(count), output, batch_size, per=n).view(count, n)
