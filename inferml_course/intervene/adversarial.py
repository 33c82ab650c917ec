"""Engineered interventions: gradient-based adversarial examples (FGSM and PGD, L-infinity).

Everything happens in pixel space: images are (N, C, H, W) in [0, 1] and the model normalises
internally (the course contract), so ``epsilon = 8/255`` means "at most 8 grey levels per pixel"
and adversarial images stay valid images after clipping to [0, 1].

============== ======================================================== ====================================
function       definition                                               cost (forward + backward passes)
============== ======================================================== ====================================
``fgsm``       x' = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1)      1 (Goodfellow, Shlens, Szegedy 2015)
``pgd``        optional uniform start in [-eps, eps]; then ``steps``    ``steps`` (+1 forward when ``y`` is
               times x <- x + alpha * sign(grad), projected back onto   None and the start is random)
               the eps-ball around x and onto [0, 1] (Madry et al.
               2018)
============== ======================================================== ====================================

Conventions (torchattacks 3.5 for the formulas, so the oracle tests compare bit for bit when the
random start is off):

* ``y=None`` attacks the model's own prediction (read from the first forward pass, as ART does,
  which avoids "label leaking"); pass the true labels to attack those.
* ``targeted=True`` makes ``y`` the *target* classes (required) and descends the cross-entropy
  towards them (torchattacks: cost = -CE(f(x), target)).
* The loss is summed over the batch (torchattacks averages it; the sign of the gradient is the
  same, and a summed loss makes every image's attack independent of its batch-mates).
* PGD's random start (``random_start=True``, the torchattacks default) draws from a local
  generator seeded with ``seed``; torchattacks uses the global RNG.

Hygiene: the gradient is taken with ``torch.autograd.grad`` with respect to a fresh copy of the
input, so parameter ``.grad``, ``requires_grad`` flags and the model's train/eval mode are left
exactly as found (a warning, never a silent switch, when dropout or batch norm is in training
mode; torchattacks switches the model to eval mode), and batch-norm running statistics updated by a
training-mode attack are restored afterwards, also on errors (``policy="as_is"`` of
:mod:`inferml_course._core.modes`).
"""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from .._core.arguments import checked
from .._core.batching import batches, check_batch_size
from .._core.checks import check_choice, check_images, check_labels, check_model_input, check_positive_int, \
    check_seed
from .._core.modes import guarded
from .._core.targets import as_target_tensor, check_model_output, resolve_targets
from .._core.directions import ATTACK, register

__all__ = ["ATTACKS", "fgsm", "pgd", "attack", "input_gradient", "success_rate", "robustness_curve",
           "check_pixel_range"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('success_rate', True, quantity='share of adversarial examples that change the prediction', family="intervene", kind=ATTACK)

#: Attacks available through :func:`attack` and :func:`robustness_curve`.
ATTACKS = ("fgsm", "pgd")

@checked
def check_pixel_range(x: torch.Tensor, argument: str = "x") -> torch.Tensor:
    """Images (N, C, H, W), floating point, finite, with every value in [0, 1] (pixel space)."""
    check_images(x, argument)
    lo, hi = float(x.detach().min()), float(x.detach().max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{argument} must hold pixel values in [0, 1] (the model normalises internally), got values "
                         f"from {lo:.3g} to {hi:.3g}; pass the images before normalisation")
    return x


def _check_real(value, argument: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a number, got {type(value).__name__}")
    value = float(value)
    if not value == value or value < 0 or (positive and value == 0) or value == float("inf"):
        raise ValueError(f"{argument} must be a {'positive' if positive else 'non-negative'} finite number, "
                         f"got {value!r}")
    return value


def _check_bool(value, argument: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{argument} must be True or False, got {type(value).__name__}")
    return value


def _loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, targeted: bool):
    """Gradient of the attack objective with respect to ``x`` (a fresh leaf), and the logits.

    Objective: CE(f(x), y) summed over the batch (to ascend), or -CE towards the target when
    ``targeted``. ``y=None`` uses the argmax of these very logits (no extra pass).
    """
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        logits = check_model_output(model(leaf), x.shape[0])
        labels = resolve_targets(y, logits, "y")
        loss = F.cross_entropy(logits, labels, reduction="sum")
        if targeted:
            loss = -loss
        (grad,) = torch.autograd.grad(loss, leaf)
    return grad, logits.detach(), labels


@guarded()
@checked
def input_gradient(model: nn.Module, x: torch.Tensor, y=None, targeted: bool = False) -> torch.Tensor:
    """The gradient (N, C, H, W) that FGSM follows: d CE(f(x), y) / dx (or d[-CE(f(x), target)] / dx).

    Its sign, scaled by epsilon, *is* the FGSM perturbation. One forward and one backward pass.
    """
    x = check_model_input(model, check_pixel_range(x))  # the dtype rule of _core.perturb
    _check_bool(targeted, "targeted")
    y = as_target_tensor(y, x.shape[0], x.device, "y")
    if targeted and y is None:
        raise ValueError("y is required when targeted=True: it holds the target classes")
    return _loss_gradient(model, x, y, targeted)[0]


@guarded()
@checked
def fgsm(model: nn.Module, x: torch.Tensor, y=None, epsilon: float = 8 / 255, targeted: bool = False,
         batch_size="auto") -> torch.Tensor:
    """Fast gradient sign method: x' = clip(x + epsilon * sign(grad_x CE(f(x), y)), 0, 1).

    Untargeted (default): ``y`` holds the classes to move away from (None: the model's
    predictions). ``targeted=True``: ``y`` holds target classes and the step goes down the loss
    towards them. Returns adversarial images (N, C, H, W) in [0, 1], detached, in the model's dtype (the
    dtype rule of :mod:`inferml_course._core.perturb`).
    One forward and one backward pass per image, ``batch_size`` images at a time (``"auto"``: the
    measured fastest chunk, see :mod:`inferml_course._core.batching`; an int; None: all at once).
    """
    x = check_model_input(model, check_pixel_range(x))  # the dtype rule of _core.perturb
    epsilon = _check_real(epsilon, "epsilon")
    _check_bool(targeted, "targeted")
    y = as_target_tensor(y, x.shape[0], x.device, "y")
    if targeted and y is None:
        raise ValueError("y is required when targeted=True: it holds the target classes")
    check_batch_size(batch_size)
    batch_size = check_batch_size(batch_size, x, model=model, work=x.shape[0], backward=True)
    out = []
    for xb, yb in _chunks(x, y, batch_size):
        grad, _, _ = _loss_gradient(model, xb, yb, targeted)
        out.append((xb.detach() + epsilon * grad.sign()).clamp(0, 1))
    return torch.cat(out)


@guarded()
@checked
def pgd(model: nn.Module, x: torch.Tensor, y=None, epsilon: float = 8 / 255, step_size: float = 2 / 255,
        steps: int = 10, random_start: bool = True, targeted: bool = False, seed: int = 0,
        batch_size="auto") -> torch.Tensor:
    """Projected gradient descent in the L-infinity ball of radius ``epsilon`` (Madry et al. 2018).

    Start at x (``random_start=False``) or at clip(x + U(-eps, eps), 0, 1) drawn from a generator
    seeded with ``seed``; then ``steps`` times: x_t+1 = clip(x + clip(x_t + alpha sign(grad) - x,
    -eps, eps), 0, 1) with alpha = ``step_size``. ``y`` and ``targeted`` as in :func:`fgsm` (with a
    random start and ``y=None`` one extra forward pass on the clean images fixes the classes).
    Cost: ``steps`` forward and backward passes.
    """
    x = check_model_input(model, check_pixel_range(x))  # the dtype rule of _core.perturb
    epsilon = _check_real(epsilon, "epsilon")
    step_size = _check_real(step_size, "step_size", positive=True)
    check_positive_int(steps, "steps")
    _check_bool(random_start, "random_start")
    _check_bool(targeted, "targeted")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    y = as_target_tensor(y, x.shape[0], x.device, "y")
    if targeted and y is None:
        raise ValueError("y is required when targeted=True: it holds the target classes")
    check_batch_size(batch_size)
    batch_size = check_batch_size(batch_size, x, model=model, work=steps * x.shape[0], backward=True)
    x0 = x.detach()
    if random_start:
        gen = torch.Generator(device=x.device).manual_seed(check_seed(seed))
        noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1
        start = (x0 + epsilon * noise).clamp(0, 1)
    else:
        start = x0.clone()
    out = []
    for (xb, yb), sb in zip(_chunks(x0, y, batch_size), start.split(batch_size or len(x0))):
        if yb is None and random_start:  # attack the prediction on the clean image, not on the noisy start
            with torch.no_grad():
                yb = check_model_output(model(xb), xb.shape[0]).argmax(1)
        adv = sb
        for _ in range(steps):
            grad, _, labels = _loss_gradient(model, adv, yb, targeted)
            yb = labels  # y=None: fixed after the first step
            adv = adv + step_size * grad.sign()
            adv = (xb + (adv - xb).clamp(-epsilon, epsilon)).clamp(0, 1)
        out.append(adv.detach())
    return torch.cat(out)


def _chunks(x, y, batch_size):
    step = batch_size or len(x)
    for i in range(0, len(x), step):
        yield x[i:i + step], (None if y is None else y[i:i + step])


@guarded()
@checked
def attack(name: str, model: nn.Module, x: torch.Tensor, y=None, **options) -> torch.Tensor:
    """Run attack ``name`` (one of :data:`ATTACKS`) with its options."""
    check_choice(name, ATTACKS, "attack")
    return {"fgsm": fgsm, "pgd": pgd}[name](model, x, y, **options)


@torch.no_grad()
def _predict(model, x, batch_size):
    return torch.cat([model(chunk).argmax(1) for chunk in batches(x, batch_size, model=model)])


@guarded()
@checked
def success_rate(model: nn.Module, x_adv: torch.Tensor, y, targeted: bool = False, among=None,
                 batch_size="auto") -> float:
    """Attack success rate, **higher = stronger attack** (a fraction in [0, 1]).

    Untargeted: the share of images whose prediction is no longer ``y``; targeted: the share now
    predicted as the target ``y``. ``among`` (a boolean (N,) tensor) restricts the count, e.g. to
    the images the model classified correctly before the attack (the usual convention).
    """
    check_images(x_adv, "x_adv")
    y = as_target_tensor(y, x_adv.shape[0], x_adv.device, "y")
    if y is None:
        raise ValueError("y is required: the true labels (untargeted) or the target classes (targeted)")
    with torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in batches(x_adv, check_batch_size(batch_size), model=model)])
    check_labels(y, "y", len(y), logits.shape[1])  # a label out of range would count as a success
    pred = logits.argmax(1)
    hit = pred == y if targeted else pred != y
    if among is not None:
        among = torch.as_tensor(among, device=hit.device)
        if among.dtype != torch.bool or among.shape != hit.shape:
            raise ValueError(f"among must be a boolean tensor of shape {tuple(hit.shape)}")
        if not bool(among.any()):
            raise ValueError("among selects no image")
        hit = hit[among]
    return float(hit.float().mean())


@guarded()
@checked
def robustness_curve(model: nn.Module, x: torch.Tensor, y, epsilons=(0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255,
                                                                   16 / 255),
                     attack: str = "pgd", batch_size="auto", **options) -> dict:
    """Accuracy and attack success rate against the attack budget epsilon.

    Returns ``{"epsilon": (E,), "accuracy": (E,), "success_rate": (E,)}`` (float tensors):
    accuracy on the attacked images (higher = more robust) and the share of the initially correct
    images that the attack flips (higher = stronger attack). ``y`` are the true labels. PGD's step
    size defaults to ``max(epsilon / 4, 1/255)`` per epsilon unless ``step_size`` is given, so
    every budget gets the same number of steps to use it.
    """
    check_choice(attack, ATTACKS, "attack")
    x = check_model_input(model, check_pixel_range(x))  # the dtype rule of _core.perturb
    y = as_target_tensor(y, x.shape[0], x.device, "y")
    if y is None:
        raise ValueError("y is required: the true labels")
    eps = [_check_real(e, "epsilons") for e in epsilons]
    if not eps:
        raise ValueError("epsilons must hold at least one value")
    clean_correct = _predict(model, x, check_batch_size(batch_size)) == y
    acc, rate = [], []
    for e in eps:
        if e == 0:
            adv = x
        elif attack == "fgsm":
            adv = fgsm(model, x, y, epsilon=e, batch_size=batch_size, **options)
        else:
            opts = dict(options)
            opts.setdefault("step_size", 2.5 * e / opts.get("steps", 10))
            adv = pgd(model, x, y, epsilon=e, batch_size=batch_size, **opts)
        pred = _predict(model, adv, batch_size)
        acc.append(float((pred == y).float().mean()))
        rate.append(float((pred[clean_correct] != y[clean_correct]).float().mean()) if clean_correct.any() else 0.0)
    return {"epsilon": torch.tensor(eps), "accuracy": torch.tensor(acc), "success_rate": torch.tensor(rate)}
