"""Gradient-based explanations: what small change of each pixel moves the class score most?

Every function has the course signature ``f(model, x, target=None, **options)`` and returns a map
(N, H, W) at input resolution (``channels="keep"`` returns (N, C, H, W)), float32 (float64 for
float64 inputs), raw: never min-max normalised, signed where the method is signed. The score is
the raw logit of the target class (as in Captum and the original papers).

Cost, in forward (F) and backward (B) passes over the N images:

==========================  ================================================  ==================
function                    definition                                        cost
==========================  ================================================  ==================
``saliency``                d z_t / d x  (Simonyan et al. 2014)               1 F + 1 B
``input_x_gradient``        x * d z_t / d x  (Shrikumar et al. 2016)          1 F + 1 B
``guided_backprop``         ReLUs pass back positive gradients only where      1 F + 1 B
                            their input was positive (Springenberg et al.)
``deconvnet``               ReLUs pass back positive gradients, ignoring the   1 F + 1 B
                            forward mask (Zeiler and Fergus 2014)
``smoothgrad``              mean gradient over noisy copies (Smilkov 2017)    S (F + B) [+1 F]
``integrated_gradients``    (x - b) * integral of the gradient along the       m (F + B) [+1 F]
                            straight path b -> x (Sundararajan et al. 2017)
``blur_ig``                 integral of the gradient along a path of ever      m (F + B) [+1 F]
                            blurrier images (Xu et al. 2020)
``fullgrad``                |x * grad| plus the |bias * gradient| of every     1 F + 1 B
                            conv / batch-norm layer (Srinivas and Fleuret 2019)
==========================  ================================================  ==================

[+1 F]: when ``target=None`` the predicted class is read from one extra forward pass on ``x``
(the path or the noisy copies do not contain ``x`` itself in general).

On a CPU the passes run on channels-last copies of the images
(:func:`inferml_course._core.adapter.forward_images`): the same gradients up to float rounding, and
faster (ResNet-50, 8 images: 1.08x Captum's speed on the same call, which runs the plain layout).
FullGrad keeps the caller's layout: its hooks record every layer output of a pass, and the retry of a
model that refuses channels-last would record them twice.

Channel reduction (``channels=``): ``"sum"`` (signed sum over colour channels), ``"abs"`` (sum of
absolute values), ``"max_abs"`` (largest absolute value over channels, Simonyan et al.'s rule), or
``"keep"`` (the raw (N, C, H, W) attribution, e.g. for completeness checks). Defaults: ``"max_abs"``
for ``saliency`` and ``smoothgrad`` (unsigned by definition in their papers), ``"sum"`` for the others.

Where we differ from Captum (0.9) and why:

* ``saliency`` returns the signed gradient with ``channels="keep"``; Captum's ``Saliency`` takes
  ``abs=True`` by default. Our default ``"max_abs"`` follows the paper (max over channels).
* ``smoothgrad``'s ``noise`` is a fraction of each image's value range (max - min), as in the
  SmoothGrad paper (which recommends 10-20 %); Captum's ``NoiseTunnel(stdevs=1.0)`` is an absolute
  standard deviation. ``noise_type="absolute"`` gives Captum's meaning. We average the *signed*
  gradient (the paper); ``NoiseTunnel(Saliency(m))`` averages |gradient|.
* ``integrated_gradients(rule="riemann_trapezoid")`` uses the true trapezoid weights
  1/(m-1) (halved at both ends), which sum to 1; Captum uses 1/m (halved at the ends), which sum
  to (m-1)/m and so under-estimate the integral by a factor (m-1)/m. The other rules
  (``riemann_left``, ``riemann_right``, ``riemann_middle``, ``gausslegendre``) equal Captum's.
* Guided backprop and deconvnet hook ``nn.ReLU`` modules (functional ``F.relu`` is invisible to
  hooks), exactly like Captum; the course models use one ``nn.ReLU`` module per activation.

Modes (``policy="as_is"`` of :mod:`inferml_course._core.modes`): the model runs in the mode it is
in; a dropout or batch-norm module in training mode gets one warning per call (the result is random,
batch norm mixes the samples of a batch), and every module's flag and every batch-norm statistic are
restored afterwards, also on errors.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_choice, check_model_input, check_number, check_positive_int, check_seed
from .._core.hooks import capture_many, relu_rule
from .._core.modes import guarded
from .._core.adapter import forward_images, implicit_bias, resolve_baseline
from .._core.batching import check_batch_size
from .._core.images import CHANNELS, gaussian_blur, reduce_channels
from .._core.paths import noise_sigma, noisy_points, path_gradients, path_start
from .._core.targets import as_target_tensor, check_model_output, output_dtype, resolve_targets
from .registry import explainer

__all__ = ["saliency", "input_x_gradient", "guided_backprop", "deconvnet", "smoothgrad", "integrated_gradients",
           "blur_ig", "fullgrad", "quadrature", "RULES", "SMOOTHGRAD_BASES"]

#: Quadrature rules of :func:`integrated_gradients`.
RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
#: Gradient methods :func:`smoothgrad` can average.
SMOOTHGRAD_BASES = ("saliency", "input_x_gradient", "guided_backprop", "deconvnet")
_BASE_RULE = {"saliency": None, "input_x_gradient": None, "guided_backprop": "guided", "deconvnet": "deconvnet"}


def _finish(attr: torch.Tensor, x: torch.Tensor, channels: str) -> torch.Tensor:
    return reduce_channels(attr, channels).to(output_dtype(x)).detach()


def _single_pass(model, x, target, channels, rule, method, multiply):
    x = check_model_input(model, x)
    check_choice(channels, CHANNELS, "channels")
    t = as_target_tensor(target, x.shape[0], x.device)
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad(), (relu_rule(model, rule) if rule else nullcontext()):
        logits = check_model_output(forward_images(model, xg), x.shape[0])
        t = resolve_targets(t, logits)
        (grad,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), xg)
    return _finish(grad * x if multiply else grad, x, channels)


@explainer("saliency", family="gradient", label="Saliency", order=10)
@guarded()
@checked
def saliency(model: nn.Module, x: torch.Tensor, target=None, channels: str = "max_abs") -> torch.Tensor:
    """Vanilla gradient d z_t / d x (Simonyan, Vedaldi and Zisserman 2014): one forward, one backward.

    ``channels="keep"`` gives the signed gradient (N, C, H, W); the default ``"max_abs"`` is the
    paper's map, the largest absolute gradient over the colour channels.
    """
    return _single_pass(model, x, target, channels, None, "saliency", multiply=False)


@explainer("input_x_gradient", family="gradient", signed=True, label="Input × Gradient", order=20)
@guarded()
@checked
def input_x_gradient(model: nn.Module, x: torch.Tensor, target=None, channels: str = "sum") -> torch.Tensor:
    """Input times gradient, x * d z_t / d x (signed): one forward, one backward."""
    return _single_pass(model, x, target, channels, None, "input_x_gradient", multiply=True)


@explainer("guided_backprop", family="gradient", signed=True, label="Guided Backprop", order=40)
@guarded()
@checked
def guided_backprop(model: nn.Module, x: torch.Tensor, target=None, channels: str = "sum") -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): at every ReLU only positive gradients flow
    back, and only where the ReLU's input was positive. Signed; one forward, one backward."""
    return _single_pass(model, x, target, channels, "guided", "guided_backprop", multiply=False)


@explainer("deconvnet", family="gradient", signed=True, label="Deconvnet", order=30)
@guarded()
@checked
def deconvnet(model: nn.Module, x: torch.Tensor, target=None, channels: str = "sum") -> torch.Tensor:
    """Deconvnet (Zeiler and Fergus 2014): at every ReLU the gradient itself is rectified, whatever the
    forward input was. Signed; one forward, one backward."""
    return _single_pass(model, x, target, channels, "deconvnet", "deconvnet", multiply=False)


# --- path and sampling methods ---------------------------------------------------------------------------

@explainer("smoothgrad", family="gradient", interactive={"samples": 25}, label="SmoothGrad", order=50)
@guarded()
@checked
def smoothgrad(model: nn.Module, x: torch.Tensor, target=None, samples: int = 25, noise: float = 0.15,
               noise_type: str = "relative", base: str = "saliency", seed: int = 0, batch_size="auto",
               channels: str = "max_abs") -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): the mean of ``base``'s attribution over ``samples`` noisy copies.

    Args:
        noise: the noise standard deviation. With ``noise_type="relative"`` (default, as in the
            paper) it is a fraction of each image's value range max(x) - min(x) (the paper suggests
            0.1-0.2); with ``"absolute"`` it is the standard deviation itself (Captum's ``stdevs``).
            ``noise=0`` gives exactly the plain ``base`` attribution.
        base: ``"saliency"`` (signed gradients are averaged, then reduced), ``"input_x_gradient"``
            (noisy input times its gradient), ``"guided_backprop"`` or ``"deconvnet"``.
        seed: seeds a local ``torch.Generator`` (the global random state is untouched).
        batch_size: the most noisy images per forward/backward pass: ``"auto"`` (the fastest chunk,
            measured once per model and image shape: :mod:`inferml_course._core.batching`), an int, or
            None (all at once, Captum's default). The result does not depend on it: the noise is drawn one sample at a time.

    Cost: ``samples`` forward and backward passes over the batch, plus one forward when ``target=None``.
    """
    x = check_model_input(model, x)
    check_choice(channels, CHANNELS, "channels")
    check_choice(base, SMOOTHGRAD_BASES, "base")
    check_choice(noise_type, ("relative", "absolute"), "noise_type")
    check_positive_int(samples, "samples")
    check_batch_size(batch_size)
    noise = check_number(noise, "noise", allow_zero=True)
    batch_size, t = path_start(model, x, target, batch_size, samples)
    sigma = noise_sigma(x, noise, noise_type)
    noisy = noisy_points(x, sigma, check_seed(seed))
    multiply = base == "input_x_gradient"

    def point(ks):
        images = noisy(ks)
        return images, (images if multiply else None)

    weights = torch.full((samples,), 1.0 / samples, dtype=torch.float64)
    total, _ = path_gradients(model, point, samples, x, t, batch_size, weights, rule=_BASE_RULE[base])
    return _finish(total, x, channels)


@checked
def quadrature(rule: str, steps: int):
    """Nodes alpha_k in [0, 1] and weights w_k (float64 tensors) of an integration rule on [0, 1].

    ``riemann_left`` / ``riemann_right`` / ``riemann_middle``: alpha = (k + 0, 1 or 1/2) / m,
    w = 1/m. ``riemann_trapezoid``: alpha = k / (m - 1), w = 1/(m - 1), halved at both ends
    (needs m >= 2). ``gausslegendre``: Gauss-Legendre nodes and weights mapped to [0, 1] (exact for
    polynomials of degree <= 2m - 1).
    """
    check_choice(rule, RULES, "rule")
    check_positive_int(steps, "steps")
    m = steps
    if rule == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(m)
        return torch.from_numpy(0.5 * (nodes + 1.0)), torch.from_numpy(0.5 * w)
    k = torch.arange(m, dtype=torch.float64)
    if rule == "riemann_trapezoid":
        if m < 2:
            raise ValueError("steps must be at least 2 for rule='riemann_trapezoid'")
        w = torch.full((m,), 1.0 / (m - 1), dtype=torch.float64)
        w[0] /= 2
        w[-1] /= 2
        return k / (m - 1), w
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
    return (k + offset) / m, torch.full((m,), 1.0 / m, dtype=torch.float64)


@explainer("integrated_gradients", family="gradient", signed=True,
            interactive={"steps": 32}, label="Integrated Gradients", order=60)
@guarded()
@checked
def integrated_gradients(model: nn.Module, x: torch.Tensor, target=None, baseline: float | str | torch.Tensor = 0.0,
                         steps: int = 50,
                         rule: str = "gausslegendre", batch_size="auto", channels: str = "sum",
                         return_gap: bool = False, normalize=None):
    """Integrated gradients (Sundararajan, Taly and Yan 2017):
    (x - b) * integral_0^1 d z_t / d x (b + alpha (x - b)) d alpha, by quadrature.

    Args:
        baseline: the reference image b: 0 (black, the paper's and Captum's default), ``"mean"``
            (the training-set mean colour), a number or a tensor (see :func:`resolve_baseline`).
        steps, rule: the quadrature (see :func:`quadrature`); the defaults (50, Gauss-Legendre) are Captum's.
        batch_size: the most path images per forward/backward pass: ``"auto"`` (the measured fastest
            chunk, see :mod:`inferml_course._core.batching`), an int, or None (all steps at once,
            Captum's default); the result does not depend on it.
        return_gap: also return the completeness gap per image,
            sum(attribution) - (z_t(x) - z_t(b)), which goes to 0 as ``steps`` grows. It costs one
            forward pass on x and b when the rule's nodes do not contain both ends.

    Returns the attribution map, or ``(map, gap)`` with ``gap`` of shape (N,).
    Cost: ``steps`` forward and backward passes over the batch (+1 forward when ``target=None``).
    """
    x = check_model_input(model, x)
    check_choice(channels, CHANNELS, "channels")
    alphas, weights = quadrature(rule, steps)
    check_batch_size(batch_size)
    b = resolve_baseline(model, x, baseline, normalize=normalize).expand_as(x)
    batch_size, t = path_start(model, x, target, batch_size, steps)
    n = x.shape[0]
    xd = x.detach()
    delta = xd - b
    a = alphas.to(device=x.device, dtype=x.dtype)

    def point(ks):
        return (b.unsqueeze(0) + a[ks].view(-1, 1, 1, 1, 1) * delta.unsqueeze(0)).reshape(-1, *x.shape[1:]), None

    total, t = path_gradients(model, point, steps, x, t, batch_size, weights)
    attr = delta * total
    result = _finish(attr, x, channels)
    if not return_gap:
        return result
    with torch.no_grad():
        ends = check_model_output(model(torch.cat([xd, b])), 2 * n)
        z_x, z_b = ends[:n].gather(1, t[:, None])[:, 0], ends[n:].gather(1, t[:, None])[:, 0]
    gap = attr.sum((1, 2, 3)) - (z_x - z_b)
    return result, gap.to(output_dtype(x)).detach()


# --- Blur IG -----------------------------------------------------------------------------------------------

@explainer("blur_ig", family="gradient", signed=True, interactive={"steps": 32}, label="Blur IG", order=70)
@guarded()
@checked
def blur_ig(model: nn.Module, x: torch.Tensor, target=None, max_sigma: float = 8.0, steps: int = 50,
            grad_step: float = 0.01, batch_size="auto", channels: str = "sum") -> torch.Tensor:
    """Blur integrated gradients (Xu et al. 2020): integrate the gradient along a path from a heavily
    blurred image (sigma = ``max_sigma`` pixels) to x, so no artificial baseline image is needed.

    With sigma_k = k * max_sigma / steps (k = 0..steps-1), the attribution is
    ``-sum_k (sigma_{k+1} - sigma_k) * (d x_sigma / d sigma)(sigma_k) * grad z_t(x_{sigma_k})``, the
    derivative along the path taken by a finite difference of ``grad_step`` in sigma (the PAIR
    ``saliency`` reference does the same; it uses max_sigma = 50 for 224-pixel images, which we
    scale to 8 for the course's 32-pixel images). The blur is the package's one Gaussian blur, with
    scipy's ``mode="reflect"`` border; the reference's ``gaussian_blur`` pads with zeros
    (``mode="constant"``), so near the borders the two maps differ (``tests/test_oracle_saliency.py``
    matches them with the same border). Signed. Cost: ``steps`` forward and backward passes (+1 forward
    when ``target=None``).
    """
    x = check_model_input(model, x)
    check_choice(channels, CHANNELS, "channels")
    check_positive_int(steps, "steps")
    check_batch_size(batch_size)
    max_sigma, grad_step = check_number(max_sigma, "max_sigma"), check_number(grad_step, "grad_step")
    batch_size, t = path_start(model, x, target, batch_size, steps)
    n = x.shape[0]
    sigmas = torch.arange(steps + 1, dtype=torch.float64) * (max_sigma / steps)
    xd = x.detach()

    def point(ks):
        s = sigmas[ks].to(device=x.device, dtype=x.dtype).repeat_interleave(n)
        reps = xd.repeat(len(ks), 1, 1, 1)
        blurred = gaussian_blur(reps, s)
        return blurred, (gaussian_blur(reps, s + grad_step) - blurred) / grad_step  # d x_sigma / d sigma

    total, _ = path_gradients(model, point, steps, x, t, batch_size, sigmas[1:] - sigmas[:-1])
    return _finish(-total, x, channels)


# --- FullGrad -----------------------------------------------------------------------------------------------

@guarded()
def fullgrad_terms(model: nn.Module, x: torch.Tensor, target=None):
    """(input term, bias terms, targets) of :func:`_fullgrad_terms` (its flags left out)."""
    input_term, bias_terms, _, t = _fullgrad_terms(model, x, target)
    return input_term, bias_terms, t


def _fullgrad_terms(model: nn.Module, x: torch.Tensor, target=None):
    """The FullGrad decomposition of the target logit: (x * grad_x, [bias * grad of each biased layer
    output], [whether each term is a channels-first map (N, C, h, w)], targets); for a piecewise-linear
    network (ReLU, max / average pools, batch norm in eval mode, linear maps) the sum of all terms equals z_t(x) exactly; for others (GELU, LayerNorm,
    attention, Hardswish) it does not, as the paper says.

    A convolution's or batch norm's bias lies along the channel axis 1 of its output; a linear layer's
    along the last axis (a classifier head (N, D), but also tokens (N, T, D) and channels-last maps
    (N, h, w, D) in transformers). Each term has the shape of its layer's output.
    """
    x = check_model_input(model, x)
    n = x.shape[0]
    t = as_target_tensor(target, n, x.device)
    biased = [(m, b) for m in model.modules() if (b := implicit_bias(m)) is not None]
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad(), capture_many([m for m, _ in biased]) as outputs:
        logits = check_model_output(model(xg), n)  # not forward_images: a retried forward would record twice
        t = resolve_targets(t, logits)
        flat = [(out, b, isinstance(m, nn.Linear)) for outs, (m, b) in zip(outputs, biased) for out in outs]
        grads = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), [xg] + [o for o, _, _ in flat],
                                    allow_unused=True)
    input_term = (grads[0] * x).detach()
    bias_terms, spatial = [], []
    for g, (out, b, linear) in zip(grads[1:], flat):
        if g is None:
            continue
        shape = (-1,) if linear else (1, -1) + (1,) * (out.dim() - 2)
        bias_terms.append((g * b.to(g.dtype).view(shape)).detach())
        spatial.append(not linear and out.dim() == 4)
    return input_term, bias_terms, spatial, t


def _psi(term: torch.Tensor, size) -> torch.Tensor:
    """FullGrad's post-processing: absolute value, min-max per image over (C, H, W), bilinear
    upsampling to the input size, sum over channels."""
    a = term.abs()
    flat = a.reshape(a.shape[0], -1)
    a = a - flat.amin(1).view(-1, 1, 1, 1)
    a = a / (a.reshape(a.shape[0], -1).amax(1).view(-1, 1, 1, 1) + 1e-6)
    if a.shape[-2:] != tuple(size):
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
    return a.sum(1)


@explainer("fullgrad", family="gradient", label="FullGrad", order=80)
@guarded()
@checked
def fullgrad(model: nn.Module, x: torch.Tensor, target=None) -> torch.Tensor:
    """FullGrad (Srinivas and Fleuret 2019): psi(x * grad) + sum over conv / batch-norm layers of
    psi(bias * grad of the layer output), psi = abs, min-max per image, bilinear upsampling, channel sum.

    Batch-norm layers contribute their effective eval-mode bias, as in the authors' code; biases of
    linear layers are left out of the map, as in the authors' code (a classifier's have no spatial
    extent; a transformer's act on tokens or channels-last maps: :func:`fullgrad_terms` returns them
    for completeness checks). On transformers the map is the input-gradient term plus the
    convolutions' (the patch embedding's) terms, and completeness does not hold (GELU, LayerNorm,
    softmax attention are not piecewise linear). Unsigned. 1 forward + 1 backward.
    """
    x = check_model_input(model, x)
    input_term, bias_terms, spatial, _ = _fullgrad_terms(model, x, target)
    size = x.shape[-2:]
    cam = _psi(input_term, size)
    for term, is_map in zip(bias_terms, spatial):
        if is_map:
            cam = cam + _psi(term, size)
    return cam.to(output_dtype(x)).detach()
