"""Gradient-based trust and uncertainty: GradTrust, Purview and GradNorm, per sample and batched.

The three methods backpropagate a loss that needs **no label**, because at inference there is
none: GradTrust a uniform target 1/N under MSE, Purview an all-ones "confounding label" under
binary cross-entropy, GradNorm the uniform distribution under KL divergence. Their originals run
one image at a time (batch size 1). Here every score is per sample and batched: per-sample
gradients come from ``torch.func`` (``functional_call`` + ``vmap`` + ``grad``), and where the
last layer is linear, ``z = W h + b``, from a closed form in the logits ``z`` and the penultimate
features ``h`` (the input of the classifier, the final ``nn.Linear``: ``classifier=``, else
``model.last_layer``, else found by structure, see :mod:`inferml_course._core.adapter`).
A model whose logits are the mean of several heads (timm's distilled DeiT: ``head`` on the class token,
``head_dist`` on the distillation token) takes ``classifier=(head, head_dist)``: the heads enter as one
linear layer ``W = [W_1 W_2]`` over ``h = [h_1 h_2] / 2`` (:class:`~inferml_course._core.adapter.LinearHeads`),
so "the last-layer weight gradient" is both heads' weight gradients side by side. Without it such a model
is refused with a message naming the heads.
Nothing touches parameter ``.grad``, hooks are
removed and every module's mode is restored, also on errors.

Directions: :func:`gradtrust` and :func:`gradnorm` return the papers' confidences (**higher = more
trustworthy / more in-distribution**); :func:`purview` returns a gradient magnitude (**higher = more
uncertain**). The registry in :mod:`.scores` turns all of them into uncertainties.

Modes (``policy="eval"`` of :mod:`inferml_course._core.modes`): every score here is defined at
inference, so a model left in training mode runs in eval mode for the call, with a warning that says
so; every module's own flag is restored afterwards, also on errors.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from .._core.arguments import checked
from .._core.checks import check_choice, check_logits, check_model, check_model_input, check_number
from .._core.adapter import forward_with_features, resolve_classifier, shorten
from .._core.batching import batches, check_batch_size, row_chunk
from .._core.modes import eval_mode, guarded
from .registry import score

__all__ = ["gradtrust", "gradtrust_from_logits", "gradtrust_topk", "gradtrust_topk_from_features", "purview",
           "purview_features", "purview_parameters",
           "gradnorm", "gradnorm_closed_form", "PURVIEW_PARTS", "TOPK_RATIOS", "GRADNORM_VARIANTS"]

#: the two orientations of top-k GradTrust: ours (default) and the tutorial slide's wording
TOPK_RATIOS = ("contrast_over_predicted", "predicted_over_contrast")
#: GradNorm as Huang et al. define it (default) and as the GradTrust demo re-implements it
GRADNORM_VARIANTS = ("huang", "gradtrust_demo")


def _prepare(model, x, batch_size, classifier):
    """(classifier, x in the model's dtype) after checking the arguments."""
    x = check_model_input(model, x)
    check_batch_size(batch_size)
    return resolve_classifier(model, classifier), x


def _head(layer):
    w = layer.weight.detach()
    b = layer.bias.detach() if layer.bias is not None else None
    return w, b


# ------------------------------------------------------------------------------------------ GradTrust
@checked
def gradtrust_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """GradTrust in closed form: ``max_c (z_c - 1/N)^4 / mean_c (z_c - 1/N)^4`` for logits (B, N).

    Why: with ``L = mean_c (z_c - 1/N)^2`` and ``z = W h + b``, the weight gradient is
    ``G = (2/N)(z - 1/N) h^T``, so row c of ``G**2`` is ``(4/N^2)(z_c - 1/N)^2 h**2`` and its
    variance over the D columns is ``(16/N^4)(z_c - 1/N)^4 var(h**2)``. The factor in h cancels in
    the ratio: the released score depends on the logits only. Range [1, N]; higher = more trust.
    """
    logits = check_logits(logits)
    n = logits.shape[1]
    a = (logits.double() - 1.0 / n).pow(4)
    return (a.max(1).values / a.mean(1)).to(logits.dtype)


@score("gradtrust", confidence=True, family="gradient", reference="Prabhushankar & AlRegib, MIPR 2024",
       quantity=("GradTrust as released: max/mean class-row variance (a trust score, higher = more trustworthy; "
                 "uncertainty('gradtrust') is its negative)"),
       label="GradTrust", order=150, from_pass=lambda p: gradtrust_from_logits(p.logits))
@guarded(policy="eval")
@checked
def gradtrust(model, x: torch.Tensor, method: str = "gradient", batch_size="auto",
              classifier=None) -> torch.Tensor:
    """GradTrust (Prabhushankar & AlRegib, MIPR 2024) as released in the authors' ``demo.py``.

    For each image: ``L = MSE(logits, u)`` with the uniform target ``u = 1/N`` (mean over the N
    classes); ``G = dL/dW`` for the weight W (N x D) of the final linear layer (the released code
    takes the first 2-D parameter with N rows, which is that layer); ``e_c = var_j G[c, j]^2``
    (unbiased variance over the D columns of class row c); **GradTrust = max_c e_c / mean_c e_c**.
    A trust score: **higher = more trustworthy**, range [1, N].

    ``method="gradient"`` computes G per sample with ``torch.func`` (``vmap`` of ``grad``) from one
    forward pass; ``"closed_form"`` uses :func:`gradtrust_from_logits`. Both give the same number
    (up to float rounding) except in the degenerate case ``var(h**2) = 0`` (e.g. all features zero),
    where the gradient route gives 0/0 = NaN like the original code.
    """
    check_choice(method, ("gradient", "closed_form"), "method")
    layer, x = _prepare(model, x, batch_size, classifier)
    logits, h = forward_with_features(model, x, batch_size, layer)
    if method == "closed_form":
        return gradtrust_from_logits(logits)
    w, b = _head(layer)
    n = w.shape[0]

    def loss(weight, hi):
        z = F.linear(hi, weight, b)
        return (z - 1.0 / n).pow(2).mean()

    per_sample = vmap(grad(loss), in_dims=(None, 0))
    out = []
    for hc in h.split(row_chunk(batch_size, len(h), w.numel())):
        e = per_sample(w, hc).pow(2).var(dim=2)   # (B, N): variance over the D columns of each class row
        out.append(e.max(1).values / e.mean(1))
    return torch.cat(out)


@score("gradtrust_topk", confidence=True, family="gradient",
       reference="reconstruction of the MIPR 2024 text, not the released code",
       quantity=("top-k counterfactual GradTrust, course reconstruction (a trust score, higher = more "
                 "trustworthy; uncertainty('gradtrust_topk') is its negative)"),
       label="GradTrust top-k", order=160, features=True,
       from_pass=lambda p: gradtrust_topk_from_features(resolve_classifier(p.model, p.classifier), p.logits,
                                                        p.features, batch_size=p.batch_size),
       variants={"gradtrust_topk_slide": ({"ratio": "predicted_over_contrast"}, "GradTrust top-k (slide's ratio)")})
@guarded(policy="eval")
@checked
def gradtrust_topk(model, x: torch.Tensor, k: int = 3, batch_size="auto", classifier=None,
                   ratio: str = "contrast_over_predicted") -> torch.Tensor:
    """Top-k counterfactual GradTrust: a **course reconstruction** of the paper's text [INFERRED].

    The MIPR paper and the tutorial describe per-class *counterfactual* gradients of the top-k
    predicted classes, while the released code uses the single uniform-target backprop of
    :func:`gradtrust`. Our reading, labelled as ours: for each of the k most likely classes c
    (c_1 = P, the prediction; c_2..c_k, the contrast classes Q), backpropagate
    ``MSE(z, onehot(c))`` to the last-layer weight W, giving ``G_c`` (N x D), and take
    ``v_c = var(G_c ** 2)`` over all its entries. Then, by ``ratio``:

    * ``"contrast_over_predicted"`` (default, ours): ``mean_{Q in c_2..c_k} v_Q / v_P``, how much
      larger the change towards a competing class is than the change that confirms the prediction
      ("the larger the required change, the larger the trust" slide); > 1 when P is clearly ahead;
    * ``"predicted_over_contrast"`` (the tutorial slide's wording: the predicted class's gradients
      in the numerator, the contrast classes' in the denominator): ``v_P / mean_Q v_Q``, exactly
      the reciprocal of the default.

    Both are returned as the trust (**higher = more trust** as each reading has it). Because one is
    1 / the other, they rank images in exactly opposite orders: any rank metric of one is the
    mirror of the other's (AUROC_a + AUROC_b = 1). Images x (N, C, H, W); returns (N,). Per sample
    via ``vmap`` over images and targets.
    """
    check_choice(ratio, TOPK_RATIOS, "ratio")
    layer, x = _prepare(model, x, batch_size, classifier)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    logits, h = forward_with_features(model, x, batch_size, layer)
    return gradtrust_topk_from_features(layer, logits, h, k, batch_size, ratio=ratio)


@checked
def gradtrust_topk_from_features(layer, logits: torch.Tensor, h: torch.Tensor, k: int = 3,
                                 batch_size="auto", ratio: str = "contrast_over_predicted") -> torch.Tensor:
    """:func:`gradtrust_topk` from the logits (B, N) and last-layer inputs h (B, D) of one forward pass."""
    check_choice(ratio, TOPK_RATIOS, "ratio")
    n = logits.shape[1]
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 2 <= k <= n:
        raise ValueError(f"k must be from 2 to the number of classes ({n}), got {k}")
    w, b = _head(layer)

    def loss(weight, hi, target):
        z = F.linear(hi, weight, b)
        return (z - target).pow(2).mean()

    over_targets = vmap(grad(loss), in_dims=(None, None, 0))          # k targets for one image
    per_sample = vmap(over_targets, in_dims=(None, 0, 0))              # B images
    eye = torch.eye(n, dtype=h.dtype, device=h.device)
    out = []
    size = row_chunk(batch_size, len(h), k * w.numel())
    for hc, zc in zip(h.split(size), logits.split(size)):
        top = zc.topk(k, dim=1).indices                                # (B, k), top[:, 0] = prediction
        g = per_sample(w, hc, eye[top])                                # (B, k, N, D)
        v = g.pow(2).flatten(2).var(dim=2)                             # (B, k)
        contrast, predicted = v[:, 1:].mean(1), v[:, 0]
        out.append(contrast / predicted if ratio == "contrast_over_predicted" else predicted / contrast)
    return torch.cat(out)


# -------------------------------------------------------------------------------------------- Purview
PURVIEW_PARTS = ("final", "initial", "all")


@guarded(policy="eval")
@checked
def purview_features(model, x: torch.Tensor, batch_size: int = 128, names=None) -> tuple[torch.Tensor, list[str]]:
    """Per-sample squared gradient norms of parameter tensors: ``(N, P)`` and the P names.

    Loss per image: ``mean_c BCEWithLogits(z_c, 1)``, the all-ones "confounding label" in which
    every class is present. The gradients are per-sample (``vmap`` of ``grad`` over a
    ``functional_call``), so nothing accumulates: the released demo forgot to zero its gradients
    and added GradNorm's; here no ``.grad`` is read or written at all. By default all parameters
    are included, in ``named_parameters()`` order, whatever their ``requires_grad``; ``names``
    restricts the result (and the backward pass, which then stops at the earliest of them).
    """
    x = check_model_input(model, x)
    check_batch_size(batch_size)
    params = {name: p.detach() for name, p in model.named_parameters()}
    if not params:
        raise ValueError("model has no parameters")
    if names is None:
        names = list(params)
    else:
        names = list(names)
        unknown = [n for n in names if n not in params]
        if unknown or not names:
            raise ValueError(f"unknown parameter names {unknown[:5]}; valid names include: "
                             f"{shorten(params, near=unknown[0] if unknown else None)}")
    constants = {name: p for name, p in params.items() if name not in names}
    buffers = {name: b for name, b in model.named_buffers()}

    def loss(selected, xi):
        z = functional_call(model, ({**constants, **selected}, buffers), (xi.unsqueeze(0),))
        return F.binary_cross_entropy_with_logits(z, torch.ones_like(z))

    per_sample = vmap(grad(loss), in_dims=(None, 0))
    selected = {name: params[name] for name in names}
    rows = []
    with eval_mode(model), torch.no_grad():
        for chunk in batches(x, batch_size):
            g = per_sample(selected, chunk)
            rows.append(torch.stack([g[name].pow(2).flatten(1).sum(1) for name in names], dim=1))
    return torch.cat(rows), names


@checked
def purview_parameters(model, part: str = "final") -> list[str]:
    """The parameter names that :func:`purview` averages for ``part`` (see there)."""
    check_choice(part, PURVIEW_PARTS, "part")
    names = [name for name, _ in model.named_parameters()]
    p = len(names)
    j = p - 1
    if part == "initial":
        return names[:max(j // 2, 1)]
    if part == "final":
        return names[(j + 1) // 2:]
    return names


@score("purview", confidence=False, quantity="mean squared per-layer gradient norm, all-ones label",
       family="gradient", reference="Lee et al., IEEE Access 2023", label="Purview", order=140)
@guarded(policy="eval")
@checked
def purview(model, x: torch.Tensor, part: str = "final", batch_size: int = 128) -> torch.Tensor:
    """Purview (Lee et al., IEEE Access 2023), as re-implemented in the GradTrust demo, per sample.

    With ``s_p`` the squared gradient norm of parameter tensor p (:func:`purview_features`) and
    P tensors, j = P - 1: ``part="initial"`` averages the first ``floor(j/2)`` tensors,
    ``"final"`` (default) those from ``ceil(j/2)`` on, ``"all"`` every tensor. (For odd j the
    middle tensor is in neither half, as in the demo.) Returns the mean squared gradient norm:
    **higher = more uncertain** (the input needs a larger update to fit the model's purview).
    The demo reports its negative as a trust score. Only the gradients that enter the score are
    computed, so ``"final"`` needs a shorter backward pass than ``"all"``.
    """
    check_model(model)
    feats, _ = purview_features(model, x, batch_size, names=purview_parameters(model, part))
    return feats.mean(1)


# ------------------------------------------------------------------------------------------- GradNorm
@checked
def gradnorm_closed_form(logits: torch.Tensor, h: torch.Tensor, temperature: float = 1.0,
                         variant: str = "huang") -> torch.Tensor:
    """GradNorm from logits (B, N) and last-layer inputs h (B, D), no autograd; returns (B,).

    * ``variant="huang"``: ``dKL(u || softmax(z/T))/dz = (softmax(z/T) - u)/T`` and ``dz/dW = h``,
      so the L1 norm of the weight gradient factorises: ``(1/T) * sum_k |p_k - 1/N| * sum_j |h_j|``.
    * ``variant="gradtrust_demo"``: the demo's loss ``L = (1/N) sum_c p_c (log p_c - 1/N)`` (see
      :func:`gradnorm`) has ``dL/dz_k = (1/N) p_k (log p_k + H(p))`` with H the entropy, and the
      score is minus the L2 (Frobenius) norm of ``dL/dW``: ``-||dL/dz||_2 * ||h||_2``.
    """
    logits = check_logits(logits)
    t = check_number(temperature, "temperature")
    check_choice(variant, GRADNORM_VARIANTS, "variant")
    if h.dim() != 2 or h.shape[0] != logits.shape[0]:
        raise ValueError(f"h must have shape ({logits.shape[0]}, D), got {tuple(h.shape)}")
    if variant == "gradtrust_demo":
        _check_demo_temperature(t)
        log_p = torch.log_softmax(logits, dim=1)
        p = log_p.exp()
        entropy = -(p * log_p).sum(1, keepdim=True)
        dz = p * (log_p + entropy) / logits.shape[1]
        return -dz.norm(dim=1) * h.norm(dim=1)
    p = torch.softmax(logits / t, dim=1)
    return (p - 1.0 / logits.shape[1]).abs().sum(1) * h.abs().sum(1) / t


def _check_demo_temperature(t: float) -> None:
    if t != 1.0:
        raise ValueError(f"variant='gradtrust_demo' has no temperature (the demo uses T = 1); got temperature={t!r}")


@score("gradnorm", confidence=True, family="gradient", reference="Huang, Geng & Li, NeurIPS 2021",
       quantity="L1 norm of the last-layer gradient of KL(u || softmax) (a confidence)", label="GradNorm",
       order=130, features=True, from_pass=lambda p: gradnorm_closed_form(p.logits, p.features),
       variants={"gradnorm_gradtrust_demo": ({"variant": "gradtrust_demo"}, "GradNorm (GradTrust demo)")})
@guarded(policy="eval")
@checked
def gradnorm(model, x: torch.Tensor, temperature: float = 1.0, method: str = "gradient",
             batch_size="auto", classifier=None, variant: str = "huang") -> torch.Tensor:
    """GradNorm for images x (N, C, H, W): a confidence per image, (N,).

    ``variant="huang"`` (default): GradNorm as Huang, Geng & Li (NeurIPS 2021) define it, the L1
    norm of the last-layer weight gradient of ``KL(u || softmax(z / T))``, u uniform over the N
    classes. **Higher = more in-distribution** (a confident softmax is far from uniform and pulls
    hard). We use the KL itself; the authors' code backpropagates ``sum_c -log p_c`` (N times the KL
    up to a constant), which scales the score by N and does not change any ranking. Only the
    weight, not the bias, enters the norm.

    ``variant="gradtrust_demo"``: the GradTrust demo's re-implementation, the source of the
    tutorial's GradNorm column: ``nn.KLDivLoss()(u, softmax(z))`` with the arguments in the other
    order (u = 1/N passed where log-probabilities belong, the softmax as the target), i.e.
    ``L = (1/N) sum_c p_c (log p_c - 1/N)`` (mean reduction over the N classes), no temperature;
    score = **minus** the L2 norm of the last-layer weight gradient, which the demo reports with
    "higher = more trust". Up to the constant 1/N this loss is minus the entropy, whose gradient
    vanishes both for a uniform and for a one-hot softmax.

    The registry entry ``"gradnorm"`` negates either. ``method="gradient"`` (per sample, ``vmap`` of
    ``grad``) or ``"closed_form"`` (:func:`gradnorm_closed_form`); they agree to float precision.
    """
    check_choice(method, ("gradient", "closed_form"), "method")
    check_choice(variant, GRADNORM_VARIANTS, "variant")
    layer, x = _prepare(model, x, batch_size, classifier)
    t = check_number(temperature, "temperature")
    if variant == "gradtrust_demo":
        _check_demo_temperature(t)
    logits, h = forward_with_features(model, x, batch_size, layer)
    if method == "closed_form":
        return gradnorm_closed_form(logits, h, t, variant=variant)
    w, b = _head(layer)
    n = w.shape[0]
    size = row_chunk(batch_size, len(h), w.numel())

    if variant == "gradtrust_demo":
        def loss(weight, hi):
            log_p = torch.log_softmax(F.linear(hi, weight, b), dim=-1)
            # nn.KLDivLoss()(input=u, target=p), elementwise p (log p - u), mean over the N classes
            return (log_p.exp() * (log_p - 1.0 / n)).mean()

        per_sample = vmap(grad(loss), in_dims=(None, 0))
        return torch.cat([-per_sample(w, hc).flatten(1).norm(dim=1) for hc in h.split(size)])

    def loss(weight, hi):
        log_p = torch.log_softmax(F.linear(hi, weight, b) / t, dim=-1)
        return (-(log_p + torch.log(torch.tensor(float(n), dtype=log_p.dtype, device=log_p.device)))).mean()

    per_sample = vmap(grad(loss), in_dims=(None, 0))
    return torch.cat([per_sample(w, hc).abs().sum((1, 2)) for hc in h.split(size)])
