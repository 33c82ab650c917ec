"""Checkers for lesson 07 (uncertainty in explanations, VOICE): each compares an answer with the package's
own computation."""
from __future__ import annotations

import torch

from ._common import as_tensor as _as_tensor, check_finite, checker, fail as _fail, passed as _pass
from ..uncertainty.voice.maps import explanation_overlap, snr

__all__ = ["check_voice_map", "check_voice_snr", "check_explanation_overlap"]


@checker(answer="the uncertainty map")
def check_voice_map(answer, result, atol: float = 1e-5) -> None:
    """Lesson 07: the VOICE map (N, H, W) rebuilt from ``result.contrast_maps`` (N, K - 1, H, W)."""
    expected = result.uncertainty.detach().float().cpu()
    answer = _as_tensor(answer, "the uncertainty map", shape=expected.shape,
                        hint="One map per image. Hint: take the variance over the contrast axis (dim=1).").float()
    if torch.allclose(answer, expected, atol=atol):
        return _pass("the variance of the contrast maps, min-max normalised, is the VOICE map "
                     "(the normalisation makes the unbiased and the population variance agree).")
    raw = result.contrast_maps.float().cpu()
    if torch.allclose(answer, raw.var(1), atol=atol) or torch.allclose(answer, raw.var(1, correction=0), atol=atol):
        _fail("right variance; now min-max normalise each map to [0, 1] (explain.normalize_maps).")
    _fail("the map differs from ours. Hint: contrast_maps.var(dim=1), then min-max normalise each image's map.")


@checker(answer="the SNRs")
def check_voice_snr(answer, result, correct=None, atol: float = 1e-4) -> None:
    """Lesson 07: the SNR of each VOICE map (N,), mean over population standard deviation of its pixels,
    recomputed with ``voice.snr`` from ``result.uncertainty``; ``correct`` (N,) bool, if given, splits the
    means in the message."""

    answer = _as_tensor(answer, "the SNRs", nan_ok=True).double()  # NaN: checked below, once the shape is right
    u = result.uncertainty.detach().double().cpu()
    expected = snr(u).double()
    if answer.numel() == 1 and expected.numel() > 1:
        _fail("the SNRs should be one SNR per image, a tensor of shape "
              f"{tuple(expected.shape)}, got one number (mean and std over each map's pixels, not over the whole "
              "batch).")
    if answer.shape != expected.shape:
        _fail(f"the SNRs should be one SNR per image, shape {tuple(expected.shape)}, got {tuple(answer.shape)}. "
              "Hint: flatten each map first (u.flatten(1)), then take mean and std over dim 1.")

    flat = u.flatten(1)
    mean, std = flat.mean(1), flat.std(1, correction=0)
    check_finite(answer, "the SNRs", nan_ok=std == 0)  # NaN (0 / 0) accepted for a flat map only
    answer = torch.where((std == 0) & answer.isnan(), torch.zeros_like(answer), answer)  # 0/0 for a flat map

    def same(other):
        return torch.allclose(answer, other.double(), atol=atol, equal_nan=True)

    if same(expected):
        message = f"mean SNR {float(expected.mean()):.3f}"
        if correct is not None:
            ok = torch.as_tensor(correct).bool().cpu()
            message = (f"mean SNR {float(expected[ok].mean()):.3f} for the correct and "
                       f"{float(expected[~ok].mean()):.3f} for the wrong predictions")
        return _pass(f"{message}, from {float(expected.min()):.2f} to {float(expected.max()):.2f} over the images "
                     "(higher = the uncertainty is spread more evenly).")
    if same(mean / flat.std(1)):
        _fail("torch.std is the unbiased (n - 1) estimate by default; the SNR uses the population standard "
              "deviation: std(dim=1, correction=0).")
    if same(std / mean):
        _fail("inverted: the SNR is the mean over the standard deviation, not std / mean.")
    if same(snr(result.explanation.detach().double().cpu()).double()):
        _fail("that is the SNR of the explanation (result.explanation); take it of the VOICE map, "
              "result.uncertainty.")
    if same(mean / flat.var(1, correction=0)):
        _fail("divide by the standard deviation, not the variance (take the square root).")
    _fail("the SNRs differ from ours. Hint: u = result.uncertainty.flatten(1); u.mean(1) / u.std(1, correction=0).")


@checker(answer="the IoU values")
def check_explanation_overlap(answer, result, threshold: float, atol: float = 1e-5) -> None:
    """Lesson 07: VOICE's explanation overlap (the paper's IoU) per image (N,) between
    ``result.explanation`` and ``result.uncertainty`` binarised at ``threshold``."""

    answer = _as_tensor(answer, "the IoU values", shape=(result.explanation.shape[0],), flat=True,
                        hint="One IoU per image.").double()
    expected = explanation_overlap(result.explanation, result.uncertainty, threshold).double().cpu()
    if torch.allclose(answer, expected, atol=atol):
        return _pass(f"mean IoU at threshold {threshold}: {float(expected.mean()):.3f}.")
    e, u = result.explanation > threshold, result.uncertainty > threshold
    plain = ((e & u).flatten(1).sum(1).double() / (e | u).flatten(1).sum(1).clamp_min(1).double()).cpu()
    if torch.allclose(answer, plain, atol=1e-3):
        return _pass(f"mean IoU at threshold {threshold}: {float(expected.mean()):.3f} "
                     "(the authors add 1e-6 to both counts; it only matters for empty maps).")
    _fail("the IoU differs. Hint: binarise both maps with > threshold, then |E & U| / |E | U| per image.")
