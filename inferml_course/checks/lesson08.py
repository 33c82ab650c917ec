"""Checkers for lesson 08 (uncertainty attribution): each compares an answer with the package's own computation."""
from __future__ import annotations

import torch

from ._common import as_number, as_tensor as _as_tensor, checker, fail as _fail, passed as _pass
from ..uncertainty.attribution import anomaly_localization, class_shares

__all__ = ["check_class_shares", "check_murr", "check_anomaly_iou"]


@checker(answer="the class shares")
def check_class_shares(answer, probs: torch.Tensor, measure: str = "epistemic", classes=None,
                       atol: float = 1e-6) -> None:
    """Lesson 08: UA-Backprop's stage 1, the per-class shares (N, K) of uncertainty ``measure`` for the
    sampled probabilities ``probs`` (S, N, K), recomputed with ``attribution.class_shares``."""

    answer = _as_tensor(answer, "the class shares", nan_ok=True).double()  # NaN: a hint below
    probs = torch.as_tensor(probs).detach().double().cpu()
    shape = tuple(probs.shape[1:])
    if answer.shape != shape:
        if answer.numel() == shape[0]:
            _fail(f"the class shares should have shape {shape}, got one number per image, the uncertainty itself; "
                  "keep one share per class (do not sum over the classes).")
        _fail(f"the class shares should be one share per image and class, shape {shape}, got "
              f"{tuple(answer.shape)}. Hint: average over the samples, dim 0.")
    if answer.isnan().any():
        _fail("the class shares should be finite numbers, got NaN: 0 * log 0 gives NaN when a probability is "
              "exactly 0. Use torch.special.xlogy(p, p) for p * log p (it is 0 at p = 0).")
    shares = class_shares(probs)
    expected = shares[measure]

    def same(other):
        return torch.allclose(answer, other, atol=atol)

    if same(expected):
        total = float(expected.sum(1)[0])
        top = int(expected[0].argmax())
        name = classes[top] if classes is not None else f"class {top}"
        return _pass(f"the {measure} shares of image 0 sum to U = {total:.4f} nats "
                     f"({total / float(shares['total'].sum(1)[0]):.0%} of the total uncertainty), the largest on "
                     f"{name} ({float(expected[0, top]):.4f}); the {measure} UA-Backprop map sums to the same U.")
    if same(-expected):
        _fail("the sign is flipped: an entropy share is -p log p, and epistemic = total - aleatoric.")
    for other in ("total", "aleatoric", "epistemic"):
        if other != measure and same(shares[other]):
            _fail(f"those are the {other} shares; the {measure} ones are asked"
                  + (" (total - aleatoric)." if measure == "epistemic" else "."))
    if same(expected / torch.log(torch.tensor(2.0, dtype=torch.float64))):
        _fail("you used log base 2 (bits); the course measures uncertainty in nats, the natural log.")
    _fail("the shares differ from ours. Hint: g = probs.mean(0); total = -g * log g; aleatoric = "
          "(-probs * log probs).mean(0); epistemic = total - aleatoric (all per class, nothing summed).")


@checker(answer="the IoUs")
def check_anomaly_iou(answer, maps: torch.Tensor, masks: torch.Tensor, atol: float = 1e-6) -> None:
    """Lesson 08: the anomaly IoU per image (N,): the top-k pixels of each map, k = the area of its anomaly
    mask, against that mask, as ``attribution.anomaly_localization`` computes it (default rules)."""

    maps, masks = maps.detach().double().cpu(), torch.as_tensor(masks).cpu().bool()
    answer = _as_tensor(answer, "the IoUs", shape=(maps.shape[0],), hint="Give one IoU per image.").double()
    found = anomaly_localization(maps, masks)
    expected = found["iou"].double()

    def same(other):
        return torch.allclose(answer, other.double(), atol=atol)

    if same(expected):
        return _pass(f"mean IoU {float(expected.mean()):.3f} over {len(expected)} images; "
                     f"{int(found['detected'].sum())} of them reach IoU >= 0.5 (ADA {found['ADA']:.2f}), "
                     f"and the map's maximum lies in the patch in "
                     f"{int(anomaly_localization(maps, masks, ada='pointing')['detected'].sum())}.")
    flat, inside = maps.flatten(1), masks.flatten(1)
    area = inside.sum(1)

    def top_k(order):  # the first k = area pixels of each ranking, as a boolean (N, H*W)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order).contiguous())
        return rank < area[:, None]

    def iou_of(order):
        region = top_k(order)
        return (region & inside).sum(1).double() / (region | inside).sum(1).double()

    if same(iou_of(flat.argsort(dim=1, stable=True))):
        _fail("those are the least attributed pixels: sort the map in descending order.")
    if same(iou_of(flat.abs().argsort(dim=1, descending=True, stable=True))):
        _fail("you ranked |map|; rank the signed values (a negative attribution lowers the uncertainty).")
    region = top_k(flat.argsort(dim=1, descending=True, stable=True))
    if same((region & inside).sum(1).double() / area.double()):
        _fail("you divided by the patch's area (that is the share of the patch found); the IoU divides the "
              "intersection by the union of the two sets.")
    if same((region & inside).sum(1).double()):
        _fail("that is the intersection's pixel count; divide it by the union's.")
    ten = flat.argsort(dim=1, descending=True, stable=True)[:, :round(0.1 * flat.shape[1])]
    fixed = torch.zeros_like(inside).scatter_(1, ten, True)
    if same((fixed & inside).sum(1).double() / (fixed | inside).sum(1).double()):
        _fail("you kept 10 % of the pixels; keep as many top pixels as each image's patch has (masks[i].sum()).")
    _fail("the IoUs differ from ours. Hint: k = masks[i].sum(); the k pixels with the largest map values "
          "(argsort(descending=True, stable=True)); IoU = |top-k & mask| / |top-k | mask|.")


@checker(answer="MURR")
def check_murr(answer, result, budget: float = 0.05, atol: float = 1e-4) -> None:
    """Lesson 08: MURR for ``budget`` from a blurring-test result's ``ratios`` (N, P) and ``pixels`` (P,)."""
    value = as_number(answer, "MURR")
    expected = result.murr[budget]
    if abs(value - expected) <= atol:
        return _pass(f"MURR at {budget:.0%} = {expected:.3f}: the best uncertainty reduction within the budget.")
    r = result.ratios.double()
    if budget != max(result.murr) and abs(value - float((1 - r).amax(1).mean())) <= atol:
        _fail("you used every evaluated pixel count; keep only k <= budget x H x W.")
    if abs(value - float((1 - r[:, -1]).mean())) <= atol:
        _fail("that is the reduction at the last step; MURR takes the maximum over the steps, per image.")
    _fail("MURR differs from ours. Hint: per image, max over k <= budget of 1 - U_k / U_0, then the mean.")
