"""Fisher information at inference: per-sample gradients, Fisher matrices, spectra, representation collapse.

Notation. A classifier gives ``p(y | x, theta) = softmax(f(x; theta))_y``. The *score* of one
observation is ``U = grad_theta log p(y | x, theta)``. The Fisher information is the covariance of
the score, which (the score having mean zero under the model) equals ``E[U U^T]``:

* the **Fisher** (``kind="sampled"``) draws ``y ~ p(y | x, theta)`` from the model itself;
* the **empirical Fisher** (``kind="empirical"``) plugs in the dataset's labels.

Every gradient here is the gradient of the negative log-likelihood ``-log p(y | x)`` (the
cross-entropy loss), i.e. ``-U``; the sign does not matter for ``U U^T``, norms or traces.

Per-sample gradients come in one of two ways, the same numbers either way (``method=``): in closed
form from one batched forward and backward where every selected parameter belongs to a Linear,
convolution or normalisation layer (:mod:`inferml_course.fisher.closed_form`, as Opacus does), else
with :mod:`torch.func` (``functional_call`` + ``vmap`` + ``grad``): the model runs on its own
parameters and buffers, one sample at a time in a vectorised way. No Python loop over samples.
Gradients are taken *at inference*: every function that runs the model is defined in eval mode (BatchNorm uses its running statistics, dropout is off; vmap
cannot run a training-mode batch norm on single samples anyway), so a model left in training
mode is run in eval mode with a warning, and every module's own flag is restored afterwards
(``policy="eval"`` of :mod:`inferml_course._core.modes`); no buffer changes. Parameters are
detached copies, so ``requires_grad`` and ``.grad`` are never touched; the closed form's forward
hooks are removed before the call returns (also when it raises).

Inputs (:func:`inferml_course._core.checks.check_model_input`). ``x`` is a batch (N, ...): images
(N, C, H, W) or, for a model without convolutions, vectors (N, D). When the model's first layer with
parameters is a convolution, ``x`` must have that layer's batched rank, so a single image (C, H, W) is
refused (write ``x[None]``) instead of being read as C samples. **dtype rule** (as in
:mod:`inferml_course.models`): ``x`` is cast to the dtype of the model's first floating parameter, so
float64 images on a float32 model give float32 gradients. ``x`` must be on the model's device; the
model must return logits (N, K), a tensor; nothing on the meta device.

The toy functions (``bernoulli_*``, ``logistic_toy_loss``) let a lesson check the Fisher
identities in closed form before applying them to a network.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from .._core.arguments import checked
from .._core.adapter import penultimate_features, resolve_classifier, shorten
from .._core.modes import eval_mode, guarded
from .._core.batching import check_batch_size
from .._core.checks import (check_choice, check_model_input, check_not_meta,
                            check_positive_int, check_seed)
from .._core.targets import check_model_output
from . import closed_form

__all__ = [
    "MAX_FULL_MATRIX", "METHODS", "select_parameters", "per_sample_grads", "gradient_norms", "fisher_trace_per_sample",
    "FisherInformation", "fisher_information", "fisher_from_grads", "fisher_matrix", "fisher_diagonal",
    "fisher_trace", "fisher_eigenvalues", "embeddings", "representation_spectrum", "effective_rank",
]

#: how per-sample gradients are formed: "closed_form" (one batched forward and backward, exact for
#: Linear / Conv / norm layers, see :mod:`inferml_course.fisher.closed_form`), "vmap" (torch.func,
#: any model) or "auto" (the closed form where it is exact, else vmap)
METHODS = ("auto", "closed_form", "vmap")

#: largest parameter count for which ``fisher_information(..., full=True)`` builds the P x P matrix
MAX_FULL_MATRIX = 8192


# --------------------------------------------------------------------------------------------------
# argument helpers
# --------------------------------------------------------------------------------------------------

def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if next(model.parameters(), None) is None:
        raise ValueError("model has no parameters")
    return model


def _check_input(model, x, argument: str = "x") -> torch.Tensor:
    """The model and its batch ``x`` (N, ...) checked (see the module docstring), ``x`` in the model's dtype."""
    _check_model(model)
    return check_model_input(model, x, argument, images=False, same_device=True)


@checked
def select_parameters(model: nn.Module, params=None) -> dict[str, torch.Tensor]:
    """The parameters to differentiate, as ``{name: parameter}`` in the model's order.

    ``params`` may be ``None`` (every parameter), ``"last_layer"`` (the final nn.Linear: ``model.last_layer``
    or, without one, the model's last ``nn.Linear``, see :mod:`inferml_course._core.adapter`), the dotted
    name of a sub-module (``"classifier.fc2"``) or of a parameter (``"classifier.fc2.weight"``), a
    sub-module itself, or a list of such names. Unknown names raise ``ValueError``.
    """
    _check_model(model)
    named = dict(model.named_parameters())
    if params is None:
        return named
    items = params if isinstance(params, (list, tuple)) else [params]
    if not items:
        raise ValueError("params is an empty list; give None (all parameters) or at least one name")
    module_names = {id(m): n for n, m in model.named_modules()}
    chosen: set[str] = set()
    for item in items:
        if isinstance(item, nn.Module):
            prefix = module_names.get(id(item))
            if prefix is None:
                raise ValueError("params: the module given is not a sub-module of model")
        elif isinstance(item, str):
            if item == "last_layer":
                prefix = module_names[id(resolve_classifier(model))]
            elif item in named:
                chosen.add(item)
                continue
            else:
                prefix = item
                if prefix not in dict(model.named_modules()):
                    valid = [n for n, _ in model.named_modules() if n]
                    raise ValueError(f"params: unknown parameter or module name {item!r}; "
                                     f"modules include: {shorten(valid, near=item)}")
        else:
            raise TypeError(f"params must be None, a name, a sub-module or a list of those, got {type(item).__name__}")
        start = f"{prefix}." if prefix else ""
        found = [n for n in named if n.startswith(start)]
        if not found:
            raise ValueError(f"params: module {prefix!r} has no parameters")
        chosen.update(found)
    return {n: p for n, p in named.items() if n in chosen}


def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    k = getattr(model, "num_classes", None)
    if isinstance(k, int) and k > 0:
        return k
    with torch.no_grad(), eval_mode(model):  # one sample: the classes of a model without num_classes
        return int(check_model_output(model(x[:1]), 1).shape[-1])


def _resolve_target(target, n: int, k: int, device, seed: int, argument: str = "target"):
    """(mode, labels, noise): mode "predicted", "given" or "sampled" (Gumbel noise for y ~ p(y|x))."""
    if target is None:
        return "predicted", torch.zeros(n, dtype=torch.long, device=device), torch.zeros(n, 1, device=device)
    if isinstance(target, str):
        check_choice(target, ("predicted", "sampled"), argument)
        if target == "predicted":
            return _resolve_target(None, n, k, device, seed)
        gen = torch.Generator().manual_seed(seed)
        u = torch.rand(n, k, generator=gen, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
        gumbel = (-torch.log(-torch.log(u))).float().to(device)
        return "sampled", torch.zeros(n, dtype=torch.long, device=device), gumbel
    if isinstance(target, bool):
        raise TypeError(f"{argument} must be None, 'predicted', 'sampled', an int or a tensor (N,) of class indices")
    if isinstance(target, int):
        labels = torch.full((n,), target, dtype=torch.long)
    else:
        try:
            labels = torch.as_tensor(target)
        except Exception as error:
            raise TypeError(f"{argument} must be an int, a sequence or a tensor of shape (N,), "
                            f"got {type(target).__name__}") from error
        check_not_meta(labels, argument)
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
            raise TypeError(f"{argument} must hold integer class indices, got dtype {labels.dtype}")
        if labels.dim() == 0:
            labels = labels.expand(n)
        if labels.shape != (n,):
            raise ValueError(f"{argument} must have shape ({n},) to match x, got {tuple(labels.shape)}")
    labels = labels.long()
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"{argument} holds class indices outside 0..{k - 1}: "
                         f"min {int(labels.min())}, max {int(labels.max())}")
    return "given", labels.to(device), torch.zeros(n, 1, device=device)


class _Functional:
    """The model as a pure function of the selected parameters (others and buffers held fixed)."""

    def __init__(self, model: nn.Module, selected: dict[str, torch.Tensor]):
        self.model = model
        self.names = list(selected)
        self.params = {n: p.detach() for n, p in selected.items()}
        self.fixed = {n: p.detach() for n, p in model.named_parameters() if n not in selected}
        self.fixed.update({n: b.detach() for n, b in model.named_buffers()})

    def logits(self, params, xi):
        """Logits (K,) of one sample ``xi`` (run as a batch of one; the output must be logits (1, K))."""
        return check_model_output(functional_call(self.model, {**self.fixed, **params}, (xi.unsqueeze(0),)), 1)[0]


def _pick(logits: torch.Tensor, mode: str, label: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    if mode == "predicted":
        return logits.detach().argmax()
    if mode == "sampled":
        return (torch.log_softmax(logits.detach(), -1) + noise).argmax()
    return label


def _pick_rows(logits: torch.Tensor, mode: str, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """:func:`_pick` for a batch of logits (b, K): the classes (b,)."""
    if mode == "predicted":
        return logits.detach().argmax(-1)
    if mode == "sampled":
        return (torch.log_softmax(logits.detach(), -1) + noise).argmax(-1)
    return labels


def _closed_form_plan(model, selected, method):
    """The closed-form plan, or None when ``method="auto"`` and the closed form does not apply."""
    if method == "vmap":
        return None
    try:
        return closed_form.plan(model, selected)
    except closed_form.NotExact:
        if method == "closed_form":
            raise
        return None


def _per_sample_chunks(model, x, target, params, batch_size, seed, argument="target", method="auto"):
    """Yield (start, {name: (b, *shape)} gradients of -log p(target | x)) chunk by chunk (``x`` checked)."""
    check_positive_int(batch_size, "batch_size")
    check_choice(method, METHODS, "method")
    seed = check_seed(seed)
    selected = select_parameters(model, params)
    n = x.shape[0]
    mode, labels, noise = _resolve_target(target, n, _num_classes(model, x), x.device, seed, argument)
    fn = _Functional(model, selected)

    def nll(p, xi, label, nz):
        logits = fn.logits(p, xi)
        y = _pick(logits, mode, label, nz)
        return -torch.log_softmax(logits, -1).gather(0, y.view(1))[0]

    per_sample = vmap(grad(nll), in_dims=(None, 0, 0, 0))
    the_plan = _closed_form_plan(model, selected, method)
    with eval_mode(model):
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            grads = None
            if the_plan is not None:
                try:
                    grads = closed_form.per_sample_chunk(model, the_plan, x[sl],
                                                         lambda z: _pick_rows(z, mode, labels[sl], noise[sl]))
                except closed_form.NotExact:  # found during the first chunk's forward
                    if method == "closed_form":
                        raise
                    the_plan = None
            yield start, grads if grads is not None else per_sample(fn.params, x[sl], labels[sl], noise[sl])


@guarded(policy="eval")
@checked
def per_sample_grads(model: nn.Module, x: torch.Tensor, target=None, params=None, batch_size: int = 128,
                     seed: int = 0, flatten: bool = True, method: str = "auto"):
    """Gradients of ``-log p(target | x_n)`` for every sample, batched with ``torch.func``.

    Args:
        model: a classifier returning logits (N, K).
        x: the inputs (N, ...), e.g. images (N, C, H, W) in [0, 1].
        target: ``None`` or ``"predicted"`` (the model's own prediction: no label needed at
            inference), ``"sampled"`` (y ~ p(y | x), reproducible through ``seed``), an int, or
            class indices (N,).
        params: which parameters (see :func:`select_parameters`); default all.
        batch_size: samples per vectorised chunk (memory grows as batch_size x parameters).
        flatten: ``True`` returns one tensor (N, P) with parameters concatenated in model order;
            ``False`` returns ``{name: (N, *shape)}``.
        method: ``"auto"`` (default) uses the closed form of :mod:`inferml_course.fisher.closed_form`
            (one batched forward + backward, about twice as fast) when every selected parameter
            belongs to a Linear, Conv1d/2d, BatchNorm, LayerNorm or GroupNorm layer run once per
            forward, else ``torch.func``; ``"closed_form"`` refuses (:class:`~inferml_course.fisher.
            closed_form.NotExact`) where it does not apply; ``"vmap"`` always uses ``torch.func``.
            Both give the same gradients (to float rounding) for a model whose samples do not
            interact in eval mode; for a model that mixes the samples of a batch, use ``"vmap"``.
    """
    x = _check_input(model, x)
    return _stacked_grads(model, x, target, params, batch_size, seed, flatten, method=method)


def _stacked_grads(model, x, target, params, batch_size, seed, flatten, argument="target", method="auto"):
    """per_sample_grads on a checked ``x``; ``argument`` names the target in error messages."""
    out = None
    for start, g in _per_sample_chunks(model, x, target, params, batch_size, seed, argument, method):
        if out is None:  # allocated once, each chunk written in place (no second copy of N x P numbers)
            n = x.shape[0]
            out = (torch.empty(n, sum(v[0].numel() for v in g.values()), dtype=next(iter(g.values())).dtype,
                               device=x.device) if flatten
                   else {name: v.new_empty(n, *v.shape[1:]) for name, v in g.items()})
        b = next(iter(g.values())).shape[0]
        if flatten:
            col = 0
            for v in g.values():
                out[start:start + b, col:col + v[0].numel()] = v.reshape(b, -1)
                col += v[0].numel()
        else:
            for name, v in g.items():
                out[name][start:start + b] = v
    return out


@guarded(policy="eval")
@checked
def gradient_norms(model: nn.Module, x: torch.Tensor, target=None, params=None, batch_size: int = 128,
                   seed: int = 0, method: str = "auto") -> torch.Tensor:
    """L2 norm of each sample's loss gradient, (N,). **Higher = more surprise** (more uncertain).

    With ``target=None`` the gradient is that of the model's own prediction, so no label is needed:
    a large norm says the model would have to change a lot to become sure of its own answer.
    """
    x = _check_input(model, x)
    norms = [sum(v.flatten(1).pow(2).sum(1) for v in g.values()).sqrt()
             for _, g in _per_sample_chunks(model, x, target, params, batch_size, seed, method=method)]
    return torch.cat(norms)


@guarded(policy="eval")
@checked
def fisher_trace_per_sample(model: nn.Module, x: torch.Tensor, params=None, batch_size: int = 64) -> torch.Tensor:
    """Trace of each input's own Fisher matrix, (N,): ``sum_k p_k(x) ||grad log p_k(x)||^2``.

    The expectation over labels is exact (every class k, weighted by the model's probability),
    computed with ``torch.func.jacrev`` (K backward passes per sample, vectorised). **Higher = more
    information / surprise** for that input.
    """
    x = _check_input(model, x)
    check_positive_int(batch_size, "batch_size")
    fn = _Functional(model, select_parameters(model, params))

    def logp(p, xi):
        out = torch.log_softmax(fn.logits(p, xi), -1)
        return out, out.detach()

    def trace(p, xi):
        jac, lp = jacrev(logp, has_aux=True)(p, xi)
        sq = sum(j.flatten(1).pow(2).sum(1) for j in jac.values())  # (K,)
        return (lp.exp() * sq).sum()

    batched = vmap(trace, in_dims=(None, 0))
    with eval_mode(model):
        return torch.cat([batched(fn.params, x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


# --------------------------------------------------------------------------------------------------
# Fisher matrices from per-sample gradients
# --------------------------------------------------------------------------------------------------

def _check_grads(grads) -> torch.Tensor:
    if not isinstance(grads, torch.Tensor):
        raise TypeError(f"grads must be a tensor (M, P) of per-sample gradients, got {type(grads).__name__}")
    check_not_meta(grads, "grads")
    if grads.dim() != 2 or grads.shape[0] == 0 or grads.shape[1] == 0:
        raise ValueError(f"grads must have shape (M, P) with M, P > 0, got {tuple(grads.shape)}")
    if not grads.is_floating_point():
        raise TypeError(f"grads must be floating point, got dtype {grads.dtype}")
    if not torch.isfinite(grads).all():
        raise ValueError("grads contains NaN or infinite values")
    return grads


@checked
def fisher_matrix(grads: torch.Tensor, max_params: int = MAX_FULL_MATRIX) -> torch.Tensor:
    """``E[U U^T] = G^T G / M`` (P, P) from per-sample gradients ``grads`` (M, P)."""
    g = _check_grads(grads)
    if g.shape[1] > max_params:
        raise ValueError(f"grads has {g.shape[1]} parameters: the full P x P Fisher would need "
                         f"{g.shape[1] ** 2 * 4 / 1e9:.1f} GB; use fisher_diagonal / fisher_eigenvalues, "
                         f"fewer params, or raise max_params")
    return g.T @ g / g.shape[0]


@checked
def fisher_diagonal(grads: torch.Tensor) -> torch.Tensor:
    """The diagonal of the Fisher, ``E[U_i^2]`` for every parameter, (P,)."""
    g = _check_grads(grads)
    return g.pow(2).mean(0)


@checked
def fisher_trace(grads: torch.Tensor) -> float:
    """``tr E[U U^T] = E ||U||^2``: the mean squared gradient norm."""
    g = _check_grads(grads)
    return float(g.double().pow(2).sum(1).mean())


@checked
def fisher_eigenvalues(grads: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """The ``k`` largest eigenvalues of ``G^T G / M`` in descending order (all non-zero ones by default).

    With fewer samples than parameters (M < P) this uses the Gram trick: ``G^T G`` and ``G G^T``
    share their non-zero eigenvalues, and ``G G^T`` is only M x M.
    """
    g = _check_grads(grads)
    m, p = g.shape
    small = (g @ g.T if m <= p else g.T @ g).double()  # product in the input precision (fast), eigh in float64
    values = torch.linalg.eigvalsh(small / m).flip(0).clamp_min(0.0)
    values = values[:min(m, p)]
    if k is not None:
        check_positive_int(k, "k")
        values = values[:k]
    return values.to(grads.dtype)


@dataclass
class FisherInformation:
    """Summary of a Fisher matrix estimated from ``num_samples`` score vectors.

    ``diagonal`` (P,), ``trace``, the leading ``eigenvalues`` (descending), and ``matrix`` (P, P)
    when it was requested and small enough (else ``None``).
    """

    kind: str
    num_samples: int
    num_params: int
    diagonal: torch.Tensor
    trace: float
    eigenvalues: torch.Tensor
    matrix: torch.Tensor | None = None
    param_names: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        top = ", ".join(f"{v:.3g}" for v in self.eigenvalues[:3].tolist())
        return (f"FisherInformation(kind={self.kind!r}, samples={self.num_samples}, params={self.num_params}, "
                f"trace={self.trace:.4g}, top eigenvalues=[{top}])")


@checked
def fisher_from_grads(grads: torch.Tensor, kind: str = "sampled", top_k: int = 10, full: bool = False,
                      param_names=None) -> FisherInformation:
    """A :class:`FisherInformation` from per-sample gradients ``grads`` (M, P)."""
    g = _check_grads(grads)
    check_choice(kind, ("sampled", "empirical"), "kind")
    check_positive_int(top_k, "top_k")
    return FisherInformation(kind=kind, num_samples=g.shape[0], num_params=g.shape[1], diagonal=fisher_diagonal(g),
                             trace=fisher_trace(g), eigenvalues=fisher_eigenvalues(g, top_k),
                             matrix=fisher_matrix(g) if full else None, param_names=list(param_names or []))


@guarded(policy="eval")
@checked
def fisher_information(model: nn.Module, x: torch.Tensor, kind: str = "sampled", labels=None, params=None,
                       n_samples: int = 1, seed: int = 0, top_k: int = 10, full: bool = False,
                       batch_size: int = 128, method: str = "auto") -> FisherInformation:
    """Estimate the Fisher information of ``model`` on inputs ``x``.

    Args:
        kind: ``"sampled"`` (labels drawn from the model, ``n_samples`` per input, seeded: the true
            Fisher) or ``"empirical"`` (the given ``labels``: the empirical Fisher).
        labels: class indices (N,), required for ``kind="empirical"``.
        params: which parameters (see :func:`select_parameters`).
        top_k: how many leading eigenvalues to return.
        full: also build the P x P matrix (only for at most ``MAX_FULL_MATRIX`` parameters).
        method: how the per-sample gradients are formed (see :func:`per_sample_grads`).
    """
    check_choice(kind, ("sampled", "empirical"), "kind")
    check_positive_int(n_samples, "n_samples")
    check_positive_int(top_k, "top_k")
    seed = check_seed(seed)
    x = _check_input(model, x)
    names = list(select_parameters(model, params))
    if full:
        size = sum(p.numel() for p in select_parameters(model, params).values())
        if size > MAX_FULL_MATRIX:
            raise ValueError(f"full=True needs at most {MAX_FULL_MATRIX} parameters, params selects {size}; "
                             "choose fewer params (e.g. 'last_layer') or full=False")
    if kind == "empirical":
        if labels is None:
            raise ValueError("kind='empirical' needs labels (N,): the empirical Fisher uses the dataset's labels")
        g = _stacked_grads(model, x, labels, params, batch_size, seed, True, argument="labels", method=method)
    else:
        if labels is not None:
            raise ValueError("labels are only used with kind='empirical'; kind='sampled' draws them from the model")
        xs = x.repeat_interleave(n_samples, dim=0) if n_samples > 1 else x
        g = _stacked_grads(model, xs, "sampled", params, batch_size, seed, True, method=method)
    return fisher_from_grads(g, kind=kind, top_k=top_k, full=full, param_names=names)


# --------------------------------------------------------------------------------------------------
# representations
# --------------------------------------------------------------------------------------------------

@guarded(policy="eval")
@torch.no_grad()
@checked
def embeddings(model: nn.Module, x: torch.Tensor, batch_size="auto", features=None,
               classifier=None) -> torch.Tensor:
    """Penultimate features (N, D) in eval mode, in batches (the mode is restored): ``features(x)`` for a
    callable ``features``, else the input of the final linear layer (``classifier=``, ``model.last_layer``
    or the model's last ``nn.Linear``; for SmallCNN this is ``model.embed(x)``). The package's one
    embedding function (``explain.embeddings`` and the nearest neighbours use it too)."""
    x = check_model_input(model, x, "x", images=False, same_device=True)  # a parameter-free model with features=
    check_batch_size(batch_size)
    return penultimate_features(model, x, batch_size, features, classifier)


@checked
def representation_spectrum(model_or_features, x: torch.Tensor | None = None, batch_size: int = 512) -> torch.Tensor:
    """Singular values of the covariance of the centred representations, descending (D,).

    Pass a model with ``.embed`` and inputs ``x``, or a feature matrix (N, D) directly. The values
    are the variances along the principal axes (``s_i^2 / (N - 1)`` for the singular values ``s_i``
    of the centred features). Many values near zero = *dimensional collapse*: the data occupies
    only a few directions of the representation space.
    """
    if isinstance(model_or_features, nn.Module):
        if x is None:
            raise ValueError("x is required when the first argument is a model")
        feats = embeddings(model_or_features, x, batch_size)
    else:
        feats = model_or_features
        if not isinstance(feats, torch.Tensor) or feats.dim() != 2 or not feats.is_floating_point():
            raise TypeError("give a model and x, or a floating feature matrix of shape (N, D)")
        check_not_meta(feats, "features")
        if not torch.isfinite(feats).all():
            raise ValueError("the features (N, D) contain NaN or infinite values")
        if x is not None:
            raise ValueError("x is only used when the first argument is a model")
    if feats.shape[0] < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {feats.shape[0]}")
    centred = feats.double() - feats.double().mean(0, keepdim=True)
    s = torch.linalg.svdvals(centred)
    values = s.pow(2) / (feats.shape[0] - 1)
    if values.shape[0] < feats.shape[1]:
        values = torch.cat([values, values.new_zeros(feats.shape[1] - values.shape[0])])
    return values.float()


@checked
def effective_rank(spectrum: torch.Tensor) -> float:
    """``exp(entropy(s / sum s))`` of a non-negative spectrum (Roy & Vetterli, 2007).

    Between 1 (all variance in one direction: full collapse) and the number of values (isotropic).
    """
    if not isinstance(spectrum, torch.Tensor) or spectrum.dim() != 1 or spectrum.numel() == 0:
        raise ValueError("spectrum must be a non-empty 1-D tensor")
    if (spectrum < 0).any() or not torch.isfinite(spectrum).all():
        raise ValueError("spectrum must hold finite non-negative values")
    total = spectrum.double().sum()
    if total <= 0:
        raise ValueError("spectrum is all zeros")
    q = spectrum.double() / total
    q = q[q > 0]
    return float(torch.exp(-(q * q.log()).sum()))


# --------------------------------------------------------------------------------------------------
# toy problems: the Bernoulli coin and a 2-D loss surface
# --------------------------------------------------------------------------------------------------
