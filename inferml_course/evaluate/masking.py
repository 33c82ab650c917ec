"""Explanation-heatmap masking: show the network only what the explanation highlights.

The heatmap, scaled to [0, 1], becomes a soft mask: each pixel keeps ``mask`` of the image and
takes ``1 - mask`` of the substrate, ``S_x = substrate + mask (x - substrate)``. The network then
classifies ``S_x``. Three summaries of the scores (Y on the image, O on the masked image):

* :func:`expected_score`: E(Y | S_x), the mean score of the target class on the masked images
  (the lecture's "expectation of the class given the explanation-masked data"); **higher is better**;
* :func:`average_drop`: 100 * mean(max(0, Y - O) / Y), the Grad-CAM++ paper's "Average Drop %"
  (Chattopadhay et al., WACV 2018); **lower is better**;
* :func:`increase_in_confidence`: 100 * mean(O > Y), the same paper's "% Increase in Confidence";
  **higher is better**.

Plus :func:`masked_accuracy` (share of masked images still classified as the target, higher is
better) and :func:`win_percentage` (the paper's head-to-head count of lower drops).

The catch the lecture points out: a larger mask keeps more of the image, so these scores favour
*large* explanations; a map that is 1 everywhere keeps the whole image and has no drop at all.

Conventions. The map is scaled per image by ``scaling="max"`` (default: negative values clipped
to 0, then divided by the maximum, so 0 stays "nothing" and a constant map keeps the whole
image), ``"minmax"`` (the CAM display rule: the smallest value becomes 0, the largest 1; a
constant map becomes an empty mask) or ``"none"`` (the map must already lie in [0, 1]). For
Grad-CAM maps, whose minimum is usually 0, the two scalings agree.
The default substrate is the training-set mean colour (``"mean"``), which is what multiplying
the *normalised* input by the map does (pytorch-grad-cam); the paper's literal pixel product
``x * mask`` is ``substrate="black"``. With our sign model a black image is classified as "no
entry" with probability 1, so black masking adds evidence of its own.
pytorch-grad-cam's ``DropInConfidence`` is max(0, Y - O) without the division by Y and the
factor 100; ours follows the paper.

Modes (``policy="as_is"`` of :mod:`inferml_course._core.modes`): the model runs in the mode it is
in; a dropout or batch-norm module in training mode gets one warning per call (the result is random,
batch norm mixes the samples of a batch), and every module's flag and every batch-norm statistic are
restored afterwards, also on errors.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_choice, check_float_tensor, check_model_input
from .._core.directions import describe, higher_is_better, register
from .._core.modes import guarded
from .._core.tables import format_table
from .._core.batching import check_batch_size, chunk_size
from .._core.perturb import first_pass, score_jobs
from ._common import DEFAULT_BLUR_SIGMA, as_map_dict, minmax, substrate_images

__all__ = ["masked_images", "to_mask", "heatmap_masking", "MaskingResult", "average_drop", "increase_in_confidence",
           "expected_score", "masked_accuracy", "win_percentage", "SCALINGS", "MASKING_METRICS"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('expected_score', True, quantity='E(Y | S_x): mean target score on explanation-masked images', family="evaluate")
register('masked_accuracy', True, quantity='share of masked images still classified as the target', family="evaluate")
register('average_drop', False, quantity='Average Drop % (Grad-CAM++)', family="evaluate")
register('increase_in_confidence', True, quantity='% Increase in Confidence (Grad-CAM++)', family="evaluate")
register('win_percentage', True, quantity='Win % of map A over map B (lower relative drop)', family="evaluate")

#: How a map becomes a mask in [0, 1].
SCALINGS = ("minmax", "max", "none")
#: The masking metrics and their directions (from the package's direction registry).
MASKING_METRICS = {name: describe(higher_is_better(name))
                   for name in ("expected_score", "masked_accuracy", "average_drop", "increase_in_confidence")}


@checked
def to_mask(maps: torch.Tensor, scaling: str = "max") -> torch.Tensor:
    """A soft mask (N, H, W) in [0, 1] from maps (N, H, W) (see the module docstring for the modes)."""
    check_choice(scaling, SCALINGS, "scaling")
    check_float_tensor(maps, "maps", "(N, H, W)", dim=3, batch=False)
    if scaling == "minmax":
        return minmax(maps)
    if scaling == "max":
        pos = maps.clamp_min(0)
        top = pos.flatten(1).amax(1).view(-1, 1, 1)
        return torch.where(top > 0, pos / top.clamp_min(1e-30), torch.zeros_like(pos))
    if bool((maps < 0).any()) or bool((maps > 1).any()):
        raise ValueError("maps must lie in [0, 1] with scaling='none'")
    return maps


@checked
def masked_images(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, substrate="mean", scaling: str = "max",
                  blur_sigma: float = DEFAULT_BLUR_SIGMA, normalize=None) -> torch.Tensor:
    """The explanation-masked images S_x = substrate + mask (x - substrate), (N, C, H, W); x in the model's dtype."""
    x = check_model_input(model, x, "x")
    maps, _ = as_map_dict(maps, x)
    mask = to_mask(next(iter(maps.values())).to(x), scaling)
    sub = substrate_images(model, x, substrate, blur_sigma, normalize=normalize).to(x.dtype)
    return _blend(x, sub, mask[:, None])


def _blend(x, sub, mask):
    """x where mask = 1, the substrate where mask = 0, exactly at both ends."""
    return x * mask + sub * (1 - mask)


@checked
def average_drop(full: torch.Tensor, masked: torch.Tensor) -> float:
    """Average Drop % = 100 mean(max(0, Y - O) / Y) (Grad-CAM++); **lower is better**.

    ``full`` (N,) are the scores Y on the images, ``masked`` (N,) the scores O on the masked images.
    Y must be positive (probabilities are); for logits use :func:`expected_score` instead.
    """
    full, masked = _pair(full, masked)
    if bool((full <= 0).any()):
        raise ValueError("full scores must be positive for average_drop (use output='probability')")
    return float(100 * ((full - masked).clamp_min(0) / full).mean())


@checked
def increase_in_confidence(full: torch.Tensor, masked: torch.Tensor) -> float:
    """% Increase in Confidence = 100 mean(O > Y) (Grad-CAM++); **higher is better**."""
    full, masked = _pair(full, masked)
    return float(100 * (masked > full).double().mean())


@checked
def expected_score(masked: torch.Tensor) -> float:
    """E(Y | S_x): the mean target score on the masked images; **higher is better**."""
    if not isinstance(masked, torch.Tensor) or masked.dim() != 1 or masked.numel() == 0:
        raise ValueError("masked must be a non-empty tensor of scores (N,)")
    return float(masked.double().mean())


@checked
def masked_accuracy(predicted: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of masked images still classified as the target; **higher is better**."""
    predicted, targets = _pair(predicted, targets, "predicted", "targets")
    return float((predicted == targets).double().mean())


@checked
def win_percentage(drops_a: torch.Tensor, drops_b: torch.Tensor) -> float:
    """% of images on which map A has the strictly smaller relative drop than map B (Grad-CAM++'s
    "win %"); **higher is better for A**. Inputs: per-image relative drops (N,) from
    :attr:`MaskingResult.drops`."""
    drops_a, drops_b = _pair(drops_a, drops_b, "drops_a", "drops_b")
    return float(100 * (drops_a < drops_b).double().mean())


def _pair(a, b, name_a="full", name_b="masked"):
    for v, name in ((a, name_a), (b, name_b)):
        if not isinstance(v, torch.Tensor) or v.dim() != 1 or v.numel() == 0:
            raise ValueError(f"{name} must be a non-empty tensor of shape (N,)")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a.double() if a.is_floating_point() else a, b.double() if b.is_floating_point() else b


@dataclass
class MaskingResult:
    """Scores of heatmap masking for one or more maps of the same images.

    ``full`` (N,): target scores on the images; ``masked[name]`` (N,): on the masked images;
    ``predicted[name]`` (N,): the classes predicted for the masked images; ``targets`` (N,).
    """

    full: torch.Tensor
    masked: dict
    predicted: dict
    targets: torch.Tensor
    output: str

    def drops(self, name: str = "map") -> torch.Tensor:
        """Relative drops max(0, Y - O) / Y (N,) of one map (lower is better)."""
        return (self.full - self.masked[name]).clamp_min(0) / self.full

    def summary(self) -> dict:
        """{name: {metric: value}} for the metrics of :data:`MASKING_METRICS`."""
        out = {}
        for name, masked in self.masked.items():
            row = {"expected_score": expected_score(masked),
                   "masked_accuracy": masked_accuracy(self.predicted[name], self.targets)}
            if self.output == "probability":
                row["average_drop"] = average_drop(self.full, masked)
            row["increase_in_confidence"] = increase_in_confidence(self.full, masked)
            out[name] = row
        return out

    def table(self) -> str:
        """A text table of the masking metrics, each with its direction."""
        rows = self.summary()
        metrics = [m for m in MASKING_METRICS if any(m in r for r in rows.values())]
        headers = {m: f"{m} ({describe(higher_is_better(m))})" for m in metrics}
        return format_table(rows, metrics, label="method", headers=headers, min_width=8)


@guarded()
@torch.no_grad()
@checked
def heatmap_masking(model: nn.Module, x: torch.Tensor, maps, target=None, substrate="mean",
                    scaling: str = "max", output: str = "probability", blur_sigma: float = DEFAULT_BLUR_SIGMA,
                    batch_size="auto", normalize=None) -> MaskingResult:
    """Classify the explanation-masked images of one map (N, H, W) or several (dict name -> map).

    ``target=None`` scores the class predicted on ``x`` (read from the forward pass on ``x`` that
    the metric needs for Y anyway). Cost: N + N * (number of maps) forward images, batched.
    See :class:`MaskingResult` and the module docstring for the metrics and their directions.
    """
    check_batch_size(batch_size)
    check_choice(scaling, SCALINGS, "scaling")
    x, t, full, _ = first_pass(model, x, target, output)
    maps, _ = as_map_dict(maps, x)
    names = list(maps)
    batch_size = chunk_size(batch_size, x, model=model, work=len(names) * x.shape[0])
    masks = torch.stack([to_mask(maps[name].to(x), scaling) for name in names])  # (M, N, H, W)
    sub = substrate_images(model, x, substrate, blur_sigma, normalize=normalize).to(x.dtype)
    n = x.shape[0]

    def build(a, b):
        j = torch.arange(a, b, device=x.device)
        m, i = j // n, j % n
        return _blend(x[i], sub[i], masks[m, i][:, None])

    scores, predicted = score_jobs(model, len(names) * n, build, t.repeat(len(names)), output, batch_size,
                                   want_prediction=True)
    scores, predicted = scores.view(len(names), n), predicted.view(len(names), n)
    return MaskingResult(full, {name: scores[k] for k, name in enumerate(names)},
                         {name: predicted[k] for k, name in enumerate(names)}, t, output)
