"""Checkers for lesson 07 (uncertainty in explanations, VOICE): each compares an answer with the package's
own computation."""
from __future__ import annotations

import torch

from ._common import as_tensor as _as_tensor, fail as _fail, passed as _pass, require_answer

__all__ = ["check_voice_map", "check_group_means", "check_explanation_overlap"]


def check_voice_map(answer, result, atol: float = 1e-5) -> bool:
    """Lesson 07: the VOICE map (N, H, W) rebuilt from ``result.contrast_maps`` (N, K - 1, H, W)."""
    answer = _as_tensor(answer, "the uncertainty map").float().cpu()
    expected = result.uncertainty.float().cpu()
    if answer.shape != expected.shape:
        _fail(f"expected one map per image, shape {tuple(expected.shape)}, got {tuple(answer.shape)}. "
              "Hint: take the variance over the contrast axis (dim=1).")
    if torch.allclose(answer, expected, atol=atol):
        return _pass("the variance of the contrast maps, min-max normalised, is the VOICE map "
                     "(the normalisation makes the unbiased and the population variance agree).")
    raw = result.contrast_maps.float().cpu()
    if torch.allclose(answer, raw.var(1), atol=atol) or torch.allclose(answer, raw.var(1, correction=0), atol=atol):
        _fail("right variance; now min-max normalise each map to [0, 1] (explain.normalize_maps).")
    _fail("the map differs from ours. Hint: contrast_maps.var(dim=1), then min-max normalise each image's map.")


def check_group_means(answer, values, correct, atol: float = 1e-4) -> bool:
    """Lesson 07: ``(mean over correct predictions, mean over wrong predictions)`` of ``values`` (N,)."""
    require_answer(answer, "the two means")
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        _fail("answer with two numbers: (mean for correct predictions, mean for wrong predictions).")
    values = torch.as_tensor(values).double().cpu()
    correct = torch.as_tensor(correct).bool().cpu()
    want = (float(values[correct].mean()), float(values[~correct].mean()))
    got = tuple(float(a) for a in answer)
    if all(abs(g - w) <= atol for g, w in zip(got, want)):
        higher = "wrong" if want[1] > want[0] else "correct"
        return _pass(f"correct {want[0]:.3f}, wrong {want[1]:.3f}: higher for the {higher} predictions.")
    if all(abs(g - w) <= atol for g, w in zip(got, want[::-1])):
        _fail("the two means are swapped: first the correct predictions, then the wrong ones.")
    _fail("the means differ from ours. Hint: values[correct].mean() and values[~correct].mean().")


def check_explanation_overlap(answer, result, threshold: float, atol: float = 1e-5) -> bool:
    """Lesson 07: VOICE's explanation overlap (the paper's IoU) per image (N,) between
    ``result.explanation`` and ``result.uncertainty`` binarised at ``threshold``."""
    from ..uncertainty.voice.maps import explanation_overlap

    answer = _as_tensor(answer, "the IoU values").double().cpu().flatten()
    expected = explanation_overlap(result.explanation, result.uncertainty, threshold).double().cpu()
    if answer.shape != expected.shape:
        _fail(f"expected one IoU per image, shape {tuple(expected.shape)}, got {tuple(answer.shape)}.")
    if torch.allclose(answer, expected, atol=atol):
        return _pass(f"mean IoU at threshold {threshold}: {float(expected.mean()):.3f}.")
    e, u = result.explanation > threshold, result.uncertainty > threshold
    plain = ((e & u).flatten(1).sum(1).double() / (e | u).flatten(1).sum(1).clamp_min(1).double()).cpu()
    if torch.allclose(answer, plain, atol=1e-3):
        return _pass(f"mean IoU at threshold {threshold}: {float(expected.mean()):.3f} "
                     "(the authors add 1e-6 to both counts; it only matters for empty maps).")
    _fail("the IoU differs. Hint: binarise both maps with > threshold, then |E & U| / |E | U| per image.")
