"""Checkers for lesson 02 (visual explanations): each recomputes the answer with the explain package."""
from __future__ import annotations

import torch

from ._common import as_number, as_tensor as _as_tensor, checker, fail as _fail, passed as _pass
from ..explain import integrated_gradients, occlusion, saliency
from ..evaluate import rank_correlation


@checker(answer="gradient")
def check_saliency_by_hand(answer, model, x: torch.Tensor, target) -> None:
    """Lesson 02: the gradient d z_target / d x of one image batch, shape (N, C, H, W), signed."""

    answer = _as_tensor(answer, "gradient", shape=x.shape,
                        hint="It has the input's shape. Hint: torch.autograd.grad(score, x) returns one gradient "
                             "per input tensor.").float()
    expected = saliency(model, x, target, channels="keep").float().cpu()
    if torch.allclose(answer.abs(), expected.abs(), atol=1e-5) and not torch.allclose(answer, expected, atol=1e-5):
        _fail("the magnitudes are right but some signs are not: keep the signed gradient (no .abs()).")
    if torch.allclose(answer, -expected, atol=1e-5):
        _fail("the sign is flipped: differentiate the logit itself, not the loss -logit.")
    if not torch.allclose(answer, expected, atol=1e-4, rtol=1e-3):
        _fail("this is not d z_target / d x. Hint: take the *logit* of the target class (no softmax), "
              "sum it over the batch, and differentiate with respect to a copy of x that requires grad.")
    return _pass("your gradient equals explain.saliency(..., channels='keep').")


@checker(answer="gap")
def check_ig_completeness(answer, model, x: torch.Tensor, target, steps: int, baseline=0.0) -> None:
    """Lesson 02: the completeness gap sum(IG) - (z(x) - z(baseline)) per image (N,) for ``steps`` steps."""

    answer = _as_tensor(answer, "gap", shape=(x.shape[0],), flat=True, hint="Give one gap per image.").double()
    _, gap = integrated_gradients(model, x, target, baseline=baseline, steps=steps, return_gap=True)
    gap = gap.double().cpu()
    if not torch.allclose(answer, gap, atol=1e-3, rtol=1e-2):
        _fail("the gap differs from ours. Hint: sum the attribution over channels and pixels, then subtract "
              "the target logit at x minus the target logit at the baseline image.")
    return _pass(f"mean |gap| with {steps} steps: {float(gap.abs().mean()):.4f}.")


@checker(answer="the rank correlation")
def check_occlusion_randomization(answer, model, random_model, x: torch.Tensor, target, window: int = 8,
                                  stride: int = 8) -> None:
    """Lesson 02: the randomisation check for occlusion: the mean Spearman rank correlation between the
    occlusion maps (``window``, ``stride``) of ``model`` and of ``random_model`` on ``x`` (N, C, H, W).

    Both sets of maps are recomputed here, so an answer made with another window or stride is caught.
    """

    value = as_number(answer, "the rank correlation")
    if not -1.0 <= value <= 1.0:
        _fail(f"{value} is not a correlation (they lie in [-1, 1]).")
    maps = {m: occlusion(net, x, target, window=window, stride=stride).cpu() for m, net in
            (("trained", model), ("random", random_model))}
    expected = float(rank_correlation(maps["trained"], maps["random"]).mean())
    if abs(value - expected) <= 1e-3:
        return _pass(f"mean rank correlation {expected:.3f}: the occlusion maps of the trained and the random "
                     "network differ, so occlusion passes this sanity check.")
    per_image = rank_correlation(maps["trained"], maps["random"])
    if abs(value - float(per_image[0])) <= 1e-3 and len(per_image) > 1:
        _fail("this is the first image's correlation: rank_correlation returns one value per image; average them.")
    for w, st in ((window, window // 2), (window // 2, window // 2), (2 * window, 2 * window)):
        if (w, st) == (window, stride) or w < 1 or st < 1 or w > min(x.shape[-2:]):
            continue
        other = rank_correlation(occlusion(model, x, target, window=w, stride=st).cpu(),
                                 occlusion(random_model, x, target, window=w, stride=st).cpu()).mean()
        if abs(value - float(other)) <= 1e-3:
            _fail(f"this is the correlation for window {w} and stride {st}; the exercise asks for window {window} "
                  f"and stride {stride}.")
    _fail(f"{value:.3f} is not the mean per-image Spearman correlation between the two networks' occlusion maps. "
          f"Hint: explain.occlusion(net, x, target, window={window}, stride={stride}) for each network, then "
          "evaluate.rank_correlation(trained_maps, random_maps) and its mean.")
