"""Evaluating uncertainty attribution maps: the blurring test, anomaly localisation, and the map as attention.

The three protocols of the UA-Backprop (CVPR 2023) and optimisation-based UA (ECCV 2024) posters,
rebuilt for the course's 32 x 32 signs. Where the posters only name a quantity, the rule below is
**our reconstruction** and is an argument:

* :func:`blurring_test`: blur the most-attributed pixels (in attribution order) up to a budget of
  2 % and 5 % of the image and follow the uncertainty U_k after k pixels:

  - **MURR** (maximum uncertainty reduction rate, **higher is better**): max_{k <= budget}
    (U_0 - U_k) / U_0, averaged over images;
  - **AUC-URR** (area under the uncertainty reduction curve, **lower is better**): the area under
    U_k / U_0 against k / budget on [0, 1] (trapezoid rule), averaged over images. (A curve that
    falls early has a small area; we read the poster's "lower is better" as the area under the
    *remaining* uncertainty.)

  "Blurred" pixels take the value of a Gaussian-blurred copy of the image (``sigma`` pixels).
* :func:`anomaly_localization`: binarise each map and compare it with the pasted patch
  (``datasets.anomalies``, mask ``"anomaly"``): **IoU** (higher is better) and **ADA**, the anomaly
  detection accuracy (higher is better), the fraction of images whose anomaly counts as found.
  ADA rules (``ada=``): ``"iou"`` (default: IoU >= ``ada_threshold``, 0.5, the usual detection
  criterion), ``"pointing"`` (the map's maximum lies in the patch). Binarisation (``binarize=``):
  ``"area"`` (default: the top-k pixels with k = the patch's area, so IoU = precision = recall),
  ``"fraction"`` (the top ``fraction`` of the pixels), ``"threshold"`` (min-max normalised map >=
  ``threshold``).
* :func:`attention_map` and :func:`attention_mitigation`: the map as attention. The CVPR poster
  defines the attention map **A(x) = (1 - M(x)) * M(x)** for a map M in [0, 1]: it is 0 where M = 0
  (background nobody attributes uncertainty to) *and* where M = 1 (the problematic region), and
  largest, 1/4, where M = 1/2. The poster does not say how A enters the network; our reading
  (``form="poster"``): the image is kept in proportion to A scaled by its largest possible value,
  w = 4 A in [0, 1], and the rest is the fill, ``w * x + (1 - w) * fill``. The **course variant**
  (``form="course"``, the default and what earlier versions called the poster's) fades only the
  problematic pixels: ``(1 - M) * x + M * fill`` (with fill 0, (1 - M(x)) * x). In both, M is the
  map's positive part min-max scaled to [0, 1] per image. Accuracy (higher is better) and NLL
  (lower is better) of the Bayesian prediction with and without attention, at test time with the
  same model (the poster does not say whether the model is retrained; we do not).

Modes (``policy="eval"`` of :mod:`inferml_course._core.modes`): the Bayesian prediction
(:func:`attention_mitigation`) and the uncertainty of :func:`blurring_test` are defined at
inference, so a model left in training mode runs in eval mode for the call, with a warning that says
so; every module's own flag is restored afterwards, also on errors.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..._core.arguments import checked
from ..._core.checks import check_choice, check_float_tensor, check_images, check_model_input, check_positive_int
from ..._core.directions import register, view
from ..._core.images import gaussian_blur, mask_iou
from ..._core.modes import guarded
from .methods import METHOD_NAMES, BayesianModel, UncertaintyModel

__all__ = ["BlurringResult", "blurring_test", "binarize_maps", "map_iou", "anomaly_localization",
           "attention_map", "attention_inputs", "attention_mitigation", "BUDGETS", "ADA_RULES",
           "BINARIZE_RULES", "FILLS", "ATTENTION_FORMS", "DIRECTIONS"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('MURR', True, quantity='maximum uncertainty reduction rate of the blurring test', family="uncertainty.attribution")
register('AUC-URR', False, quantity='area under the remaining-uncertainty curve of the blurring test', family="uncertainty.attribution")
register('IoU', True, quantity='IoU of the binarised attribution map with the anomaly patch', family="uncertainty.attribution")
register('ADA', True, quantity='anomaly detection accuracy (share of anomalies found)', family="uncertainty.attribution")
register('ACC', True, quantity='accuracy (%) of the Bayesian prediction', family="uncertainty.attribution")

#: The posters' blurring budgets (fractions of the pixels).
BUDGETS = (0.02, 0.05)
ADA_RULES = ("iou", "pointing")
BINARIZE_RULES = ("area", "fraction", "threshold")
FILLS = ("zero", "mean", "blur")
#: how the map becomes attention: "course" = (1 - M) x (+ M fill); "poster" = 4 (1 - M) M x (+ the rest fill)
ATTENTION_FORMS = ("course", "poster")
#: metric -> True when higher is better: this module's part of the package's direction registry
#: (:mod:`inferml_course._core.directions`), read-only.
DIRECTIONS = view(("MURR", "AUC-URR", "IoU", "ADA", "ACC", "NLL"))
# the posters' column labels, so their tables mark the best method without further arguments
for _budget in BUDGETS:
    for _metric in ("MURR", "AUC-URR"):
        register(f"{_metric} {_budget:.0%}", base=_metric)
register("ADA pointing", base="ADA", quantity="anomaly detection accuracy, pointing game rule")


def _check_maps(maps, x=None, argument="maps"):
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor of shape (N, H, W), got {type(maps).__name__}")
    if not maps.is_floating_point():
        raise TypeError(f"{argument} must be a floating-point tensor, got dtype {maps.dtype}")
    if maps.dim() != 3 or maps.shape[0] == 0:
        raise ValueError(f"{argument} must have shape (N, H, W) with N >= 1, got {tuple(maps.shape)}")
    if x is not None and maps.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(f"{argument} must have shape {(x.shape[0], *x.shape[-2:])} (one map per image), "
                         f"got {tuple(maps.shape)}")
    if not torch.isfinite(maps).all():
        raise ValueError(f"{argument} contains NaN or infinite values")
    return maps


def _ranking(maps: torch.Tensor) -> torch.Tensor:
    """Pixel indices (N, H*W) from the most to the least attributed (ties: lower index first)."""
    return maps.flatten(1).argsort(dim=1, descending=True, stable=True)


def _uncertainties(uncertainty, images):
    u = uncertainty(images)
    if not isinstance(u, torch.Tensor) or u.shape not in ((images.shape[0],), (images.shape[0], 1)):
        shape = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
        raise ValueError(f"uncertainty must return one value per image, (N, 1) or (N,), got {shape}; wrap a "
                         "classifier in UncertaintyModel first")
    return u.reshape(-1)


class BlurringResult(NamedTuple):
    """What :func:`blurring_test` returns.

    * ``murr`` / ``auc``: ``{budget: float}`` (MURR higher is better, AUC-URR lower is better);
    * ``pixels`` (P,): the numbers of blurred pixels k evaluated; ``ratios`` (N, P): U_k / U_0;
    * ``uncertainty`` (N,): U_0.
    """

    murr: dict
    auc: dict
    pixels: torch.Tensor
    ratios: torch.Tensor
    uncertainty: torch.Tensor


@guarded(policy="eval", arg="uncertainty")
@torch.no_grad()
@checked
def blurring_test(uncertainty, x: torch.Tensor, maps: torch.Tensor, budgets=BUDGETS, points: int = 10,
                  sigma: float = 2.0, substrate: torch.Tensor | None = None, batch_size: int = 1024) -> BlurringResult:
    """The blurring test of an attribution map (see the module docstring).

    Args:
        uncertainty: the U that was attributed: an
            :class:`~inferml_course.uncertainty.attribution.UncertaintyModel`, or any module or
            function mapping images (N, C, H, W) to uncertainties (N, 1) or (N,).
        maps: (N, H, W), larger = more uncertainty (signed maps are ranked by their signed value).
        budgets: fractions of the pixels (default 2 % and 5 %).
        points: evaluations per budget: k = round(j * budget * H * W / points), j = 0..points (all
            budgets share the evaluations; ``points`` large enough gives every pixel count).
        sigma: the blur of the replacement pixels, in pixels.
        substrate: replacement images (N, C, H, W) instead of the blurred copies (e.g. zeros).
    Images whose U_0 is 0 (nothing to reduce) are skipped: a ValueError if that leaves none.
    """
    x = check_images(x)
    maps = _check_maps(maps, x)
    check_positive_int(points, "points")
    check_positive_int(batch_size, "batch_size")
    budgets = tuple(budgets)
    if not budgets or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 < b <= 1 for b in budgets):
        raise ValueError(f"budgets must be fractions in (0, 1], got {budgets!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    if not callable(uncertainty):
        raise TypeError(f"uncertainty must be an UncertaintyModel or a function of the images, "
                        f"got {type(uncertainty).__name__}")
    n, c, h, w = x.shape
    hw = h * w
    limits = {b: max(1, round(b * hw)) for b in budgets}
    ks = sorted({round(j * limits[b] / points) for b in budgets for j in range(points + 1)})
    pixels = torch.tensor(ks, device=x.device)
    if substrate is None:
        blurred = gaussian_blur(x, torch.full((n,), float(sigma), device=x.device, dtype=x.dtype))
    else:
        blurred = check_images(substrate, "substrate")
        if blurred.shape != x.shape:
            raise ValueError(f"substrate must have the shape of x {tuple(x.shape)}, got {tuple(blurred.shape)}")
    rank = torch.empty_like(_ranking(maps))
    rank.scatter_(1, _ranking(maps), torch.arange(hw, device=x.device).expand(n, hw).contiguous())
    selected = rank[None] < pixels.view(-1, 1, 1)                       # (P, N, H*W)
    images = torch.where(selected.view(len(ks), n, 1, h, w), blurred[None], x[None]).reshape(-1, c, h, w)
    u = torch.cat([_uncertainties(uncertainty, part) for part in images.split(batch_size)]).view(len(ks), n).t()
    u0 = u[:, 0]
    keep = u0 > 0
    if not bool(keep.any()):
        raise ValueError("every image has zero uncertainty: there is nothing for the blurring test to reduce")
    ratios = u[keep] / u0[keep, None]
    murr, auc = {}, {}
    for b in budgets:
        upto = pixels <= limits[b]
        r, k = ratios[:, upto].double(), pixels[upto].double() / limits[b]
        murr[b] = float((1 - r).amax(1).mean())
        auc[b] = float((((r[:, 1:] + r[:, :-1]) / 2) * (k[1:] - k[:-1])).sum(1).mean())
    return BlurringResult(murr, auc, pixels.cpu(), ratios.float().cpu(), u0.float().cpu())


# --- anomaly localisation -------------------------------------------------------------------------------

def _check_masks(masks, maps, argument="masks"):
    if not isinstance(masks, torch.Tensor) or masks.shape != maps.shape:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"{argument} must be a tensor of shape {tuple(maps.shape)} like the maps, got {shape}")
    if masks.dtype != torch.bool:
        if masks.is_floating_point() and not ((masks == 0) | (masks == 1)).all():
            raise ValueError(f"{argument} must be boolean (or 0/1)")
        masks = masks != 0
    return masks.to(maps.device)


@checked
def binarize_maps(maps: torch.Tensor, rule: str = "area", masks: torch.Tensor | None = None,
                  fraction: float = 0.1, threshold: float = 0.5) -> torch.Tensor:
    """Boolean (N, H, W) regions from maps: ``"area"`` (top-k pixels, k = each mask's area; needs
    ``masks``), ``"fraction"`` (top ``fraction`` of the pixels) or ``"threshold"`` (min-max normalised
    map >= ``threshold``). Ties in the ranking go to the lower pixel index."""
    maps = _check_maps(maps)
    check_choice(rule, BINARIZE_RULES, "binarize")
    n, h, w = maps.shape
    if rule == "threshold":
        flat = maps.flatten(1)
        lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
        norm = torch.where(hi > lo, (flat - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi)),
                           torch.zeros_like(flat))
        return (norm >= threshold).view(n, h, w)
    if rule == "area":
        if masks is None:
            raise ValueError("binarize='area' needs the ground-truth masks (their areas set k)")
        k = _check_masks(masks, maps).flatten(1).sum(1)
    else:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
        k = torch.full((n,), max(1, round(fraction * h * w)), device=maps.device)
    rank = torch.empty((n, h * w), dtype=torch.long, device=maps.device)
    rank.scatter_(1, _ranking(maps), torch.arange(h * w, device=maps.device).expand(n, h * w).contiguous())
    return (rank < k[:, None]).view(n, h, w)


@checked
def map_iou(regions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Intersection over union of boolean regions and masks (N, H, W) -> (N,); two empty sets give 1."""
    masks = _check_masks(masks, regions)
    return mask_iou(regions, masks).float()


@checked
def anomaly_localization(maps: torch.Tensor, masks: torch.Tensor, binarize: str = "area", ada: str = "iou",
                         ada_threshold: float = 0.5, fraction: float = 0.1, threshold: float = 0.5) -> dict:
    """IoU and ADA of attribution maps against anomaly masks (see the module docstring).

    Returns ``{"IoU": mean IoU, "ADA": fraction detected, "iou": (N,), "detected": (N,) bool}``;
    both means **higher is better**.
    """
    maps = _check_maps(maps)
    masks = _check_masks(masks, maps)
    check_choice(ada, ADA_RULES, "ada")
    if isinstance(ada_threshold, bool) or not isinstance(ada_threshold, (int, float)) or not 0 <= ada_threshold <= 1:
        raise ValueError(f"ada_threshold must be in [0, 1], got {ada_threshold!r}")
    regions = binarize_maps(maps, binarize, masks, fraction, threshold)
    ious = map_iou(regions, masks)
    if ada == "iou":
        detected = ious >= ada_threshold
    else:
        top = _ranking(maps)[:, 0]
        detected = masks.flatten(1).gather(1, top[:, None])[:, 0]
    return {"IoU": float(ious.mean()), "ADA": float(detected.float().mean()), "iou": ious, "detected": detected}


# --- the map as attention --------------------------------------------------------------------------------

@checked
def attention_map(maps: torch.Tensor) -> torch.Tensor:
    """The CVPR poster's attention map **A = (1 - M) * M** for uncertainty attribution maps M in [0, 1].

    ``maps``: (N, H, W), floating point, every value in [0, 1] (scale a raw attribution first, e.g.
    with :func:`inferml_course.explain.normalize_maps`; a value outside [0, 1] is a ``ValueError``).
    Returns (N, H, W) in [0, 1/4]: 0 where M = 0 (unimportant background) and where M = 1 (the
    problematic region), 1/4 where M = 1/2. Elementwise; no normalisation is applied.
    """
    maps = check_float_tensor(maps, "maps", "(N, H, W)", dim=3)
    if maps.numel() and (float(maps.min()) < 0 or float(maps.max()) > 1):
        raise ValueError(f"maps must have values in [0, 1] (the poster's M(x)); got values from "
                         f"{float(maps.min()):.3g} to {float(maps.max()):.3g}: scale them first")
    return (1 - maps) * maps


@checked
def attention_inputs(x: torch.Tensor, maps: torch.Tensor, fill: str = "zero", sigma: float = 2.0,
                     top: float | None = None, form: str = "course") -> torch.Tensor:
    """The attended images (N, C, H, W) for images x (N, C, H, W) and maps (N, H, W).

    M = the positive part of each map, min-max normalised per image to [0, 1]. Then, with ``fill``
    the image that replaces what attention removes:

    * ``form="course"`` (default; the course's variant): ``(1 - M) * x + M * fill``, so the most
      attributed pixel is replaced completely and the least not at all;
    * ``form="poster"``: ``w * x + (1 - w) * fill`` with ``w = 4 * attention_map(M)`` =
      4 (1 - M) M in [0, 1] (the poster's A(x), scaled by its largest value 1/4; how A enters the
      network is our reading, the poster gives only A).

    ``fill``: ``"zero"`` (black: the course form is then (1 - M(x)) * x), ``"mean"`` (each image's mean
    colour) or ``"blur"`` (a Gaussian blur with ``sigma`` pixels). ``top``: a fraction of the pixels;
    when given, M is the hard mask of the ``top`` most attributed pixels instead of the scaled map
    (course form only: for a 0/1 mask the poster's (1 - M) M is 0 everywhere).
    """
    x = check_images(x)
    maps = _check_maps(maps, x)
    check_choice(fill, FILLS, "fill")
    check_choice(form, ATTENTION_FORMS, "form")
    if top is not None:  # a hard mask: the top fraction of the pixels
        if form == "poster":
            raise ValueError("top= makes M a 0/1 mask, for which the poster's (1 - M) * M is 0 everywhere; "
                             "use form='course' with top=, or top=None")
        maps = binarize_maps(maps, "fraction", fraction=top).to(x.dtype)
    m = maps.clamp_min(0).flatten(1)
    lo, hi = m.amin(1, keepdim=True), m.amax(1, keepdim=True)
    m = torch.where(hi > lo, (m - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi)), torch.zeros_like(m))
    m = m.view(x.shape[0], 1, *x.shape[-2:]).to(x.dtype).clamp(0, 1)
    keep = 1 - m if form == "course" else 4 * attention_map(m[:, 0])[:, None]
    if fill == "zero":
        other = torch.zeros_like(x)
    elif fill == "mean":
        other = x.mean((2, 3), keepdim=True).expand_as(x)
    else:
        other = gaussian_blur(x, torch.full((x.shape[0],), float(sigma), device=x.device, dtype=x.dtype))
    return keep * x + (1 - keep) * other


@guarded(policy="eval")
@torch.no_grad()
@checked
def attention_mitigation(model, x: torch.Tensor, labels: torch.Tensor, maps: dict, fill: str = "zero",
                         top: float | None = None, batch_size: int = 512, form: str = "course") -> dict:
    """Accuracy (%, higher is better) and NLL (nats, lower is better) of the Bayesian prediction on
    A(x) for every map in ``maps`` (name -> (N, H, W)), plus ``"No attention"`` on x itself.

    ``model``: a :class:`~inferml_course.uncertainty.attribution.BayesianModel` (or anything it
    wraps; the prediction is the mean of the posterior samples' probabilities). ``fill``, ``top`` and
    ``form`` (``"course"``: (1 - M) x; ``"poster"``: the poster's A = (1 - M) M) as in
    :func:`attention_inputs`.
    """
    x = check_images(x)
    if not isinstance(labels, torch.Tensor) or labels.shape != (x.shape[0],) or labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor of shape ({x.shape[0]},)")
    if not isinstance(maps, dict) or not maps:
        raise TypeError("maps must be a non-empty dict {name: maps (N, H, W)}")
    check_choice(form, ATTENTION_FORMS, "form")
    bayes = model.bayes if isinstance(model, UncertaintyModel) else model
    bayes = bayes if isinstance(bayes, BayesianModel) else BayesianModel(bayes)
    x = check_model_input(bayes, x)  # the dtype rule of _core.perturb
    labels = labels.to(x.device)

    def score(images):
        log_p = torch.cat([bayes(part) for part in images.split(batch_size)])
        if int(labels.max()) >= log_p.shape[1] or int(labels.min()) < 0:
            raise ValueError(f"labels must be class indices in [0, {log_p.shape[1]})")
        return {"ACC": float((log_p.argmax(1) == labels).float().mean() * 100),
                "NLL": float(-log_p.gather(1, labels[:, None]).mean())}

    out = {"No attention": score(x)}
    for name, m in maps.items():
        out[METHOD_NAMES.get(name, name)] = score(attention_inputs(x, _check_maps(m, x, f"maps[{name!r}]"), fill,
                                                                   top=top, form=form))
    return out
