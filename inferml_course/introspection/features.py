"""Introspective learning (Prabhushankar & AlRegib, NeurIPS 2022): sensing, then reflection.

Stage 1, *sensing*: a trained classifier ``f`` predicts ``y_hat`` feed-forward.
Stage 2, *reflection*: the network is asked, for every class ``I``, "Why ``y_hat``, rather than
``I``?". The answer is measured as the change the question would induce in the network: the
gradient of a loss ``J(z, delta_I)`` between the prediction and the one-hot label ``delta_I``,
taken with respect to the last (classifier) layer ``W`` (K x D, logits ``z = W h + b``). These
*introspective features* feed a small MLP ``H`` (the reflection network), trained on the training
set's features while ``f`` stays frozen; ``H``'s output is the introspective prediction.

Closed form (no backward pass needed). With ``e_I = dJ(z, delta_I)/dz``:

* ``loss="cross_entropy"``: ``J = -log softmax(z)_I`` and ``e_I = p - delta_I`` (as in Contrast-CAM,
  whose question "Why P, rather than Q?" is the same; the slides' Lemma 1 has this log-sum-exp form);
* ``loss="mse"``: ``J = mean_c (z_c - delta_Ic)^2`` and ``e_I = (2 / K) (z - delta_I)`` (the form
  used in the lab's GradTrust code).

Then ``dJ/dW = e_I h^T`` and ``dJ/db = e_I``: all K questions come from one forward pass.

Feature reductions (``reduction=``), a design choice the paper leaves open:

* ``"sum"`` (default): the sum over all K questions, ``(sum_I e_I) h^T`` (K x D, plus K bias
  entries). The tutorial slides describe the extraction as "the loss between the prediction and a
  vector of all ones". Whether the sum equals that depends on the loss:

  - ``loss="cross_entropy"``: yes. ``J(z, t) = -sum_c t_c log p_c`` is linear in the target t, so the
    sum over the one-hot targets is J with the all-ones target, and ``sum_I e_I = K p - 1``;
  - ``loss="mse"``: no. ``J(z, t) = mean_c (z_c - t_c)^2`` is not linear in t: ``sum_I e_I =
    2 z - 2/K``, while the all-ones target gives ``(2/K)(z - 1)``; the two differ by
    ``(2 - 2/K) z``. What the sum does equal is K times the gradient towards the uniform target
    1/K (GradTrust's target), because the mean of the K one-hot vectors is 1/K.
* ``"full"``: every question's gradient stacked, K x K x D (+ K x K): large (10 368 values for our
  signs model), only for small models.
* ``"row_norms"``: for every question I and class row c, the norm of the gradient of row c of
  ``(W, b)``: K x K values, ``|e_Ic| sqrt(||h||^2 + 1)``. Good for pictures, lossy as a feature.

What is not from the paper (the code was never released) and is therefore an exposed argument:
the loss ``J``, the reduction, the MLP widths (default 128 and 64), the optimiser (Adam), the
epochs (default 5), weight decay and the feature standardisation inside ``H``.

Modes (``policy="eval"`` of :mod:`inferml_course._core.modes`): the sensing pass (penultimate
features and logits) is defined at inference, so a model left in training mode runs in eval mode for
the call, with a warning that says so; every module's own flag is restored afterwards, also on
errors.
"""
from __future__ import annotations

import torch
from torch import nn

from .._core.arguments import checked
from .._core.adapter import classifier_pass, resolve_classifier
from .._core.modes import eval_mode, guarded
from .._core.checks import check_choice, check_model_input
from .._core.batching import batches, check_batch_size

__all__ = ["LOSSES", "REDUCTIONS", "introspective_features", "question_gradient_norms", "lemma1_terms"]

LOSSES = ("cross_entropy", "mse")
REDUCTIONS = ("sum", "full", "row_norms")


# --------------------------------------------------------------------------------------------------
# the sensing pass: penultimate features h and logits z in one forward
# --------------------------------------------------------------------------------------------------

def _question_errors(z: torch.Tensor, loss: str) -> torch.Tensor:
    """``e[n, I, :] = dJ(z_n, delta_I) / dz`` for every question I: (N, K, K)."""
    k = z.shape[1]
    eye = torch.eye(k, dtype=z.dtype, device=z.device)
    if loss == "cross_entropy":
        return torch.softmax(z, 1).unsqueeze(1) - eye
    return (2.0 / k) * (z.unsqueeze(1) - eye)


def _features_from(h: torch.Tensor, z: torch.Tensor, loss: str, reduction: str, include_bias: bool) -> torch.Tensor:
    """Introspective features (N, F) from penultimate features h (N, D) and logits z (N, K)."""
    e = _question_errors(z, loss)  # (N, I, K)
    if reduction == "sum":
        s = e.sum(1)  # (N, K): CE: the all-ones target; MSE: K x the uniform target 1/K
        parts = [(s.unsqueeze(2) * h.unsqueeze(1)).flatten(1)]
        if include_bias:
            parts.append(s)
        return torch.cat(parts, 1)
    if reduction == "full":
        parts = [(e.unsqueeze(3) * h[:, None, None, :]).flatten(1)]
        if include_bias:
            parts.append(e.flatten(1))
        return torch.cat(parts, 1)
    row = h.pow(2).sum(1, keepdim=True) + (1.0 if include_bias else 0.0)
    return (e.abs() * row.sqrt().unsqueeze(2)).flatten(1)


def _check_options(loss: str, reduction: str) -> None:
    check_choice(loss, LOSSES, "loss")
    check_choice(reduction, REDUCTIONS, "reduction")


@guarded(policy="eval")
@torch.no_grad()
@checked
def introspective_features(model: nn.Module, x: torch.Tensor, loss: str = "cross_entropy", reduction: str = "sum",
                           include_bias: bool = True, classifier=None, batch_size="auto") -> torch.Tensor:
    """Introspective features of ``x`` (N, C, H, W): gradients at the last layer for every question.

    One forward pass per batch (eval mode, restored afterwards); the gradients come from the
    closed form in the module docstring, which the tests check against autograd. Returns (N, F)
    on ``x``'s device, with F = K*D (+K) for ``"sum"``, K*K*D (+K*K) for ``"full"`` and K*K for
    ``"row_norms"``. ``classifier``: the final nn.Linear (a module or dotted name; default
    ``model.last_layer``, else the model's last ``nn.Linear``); its output must be the logits.
    """
    _check_options(loss, reduction)
    check_batch_size(batch_size)
    x = check_model_input(model, x)
    fc = resolve_classifier(model, classifier)
    out = []
    with eval_mode(model):
        for chunk in batches(x, batch_size, model=model):
            z, h = classifier_pass(model, chunk, fc)
            out.append(_features_from(h, z, loss, reduction, include_bias))
    return torch.cat(out)


@guarded(policy="eval")
@torch.no_grad()
@checked
def question_gradient_norms(model: nn.Module, x: torch.Tensor, loss: str = "cross_entropy", classifier=None,
                            batch_size="auto") -> torch.Tensor:
    """(N, K, K): entry [n, I, c] is the norm of the gradient of class row c of the last layer
    (weights and bias) for the question "Why y_hat, rather than I?". Sparse for a confident model."""
    feats = introspective_features(model, x, loss=loss, reduction="row_norms", classifier=classifier,
                                  batch_size=batch_size)
    k = int(round(feats.shape[1] ** 0.5))
    return feats.view(-1, k, k)


@guarded(policy="eval")
@torch.no_grad()
@checked
def lemma1_terms(model: nn.Module, x: torch.Tensor, classifier=None) -> dict:
    """The pieces of the introspective-learning paper's Lemma 1 at the last layer W (K x D), for every question.

    With logits y = W h + b, predicted class y_hat and the cross-entropy loss of question I,
    J_I = -log softmax(y)_I = -y_I + y_hat_logit + log(1 + sum_{j != y_hat} exp(y_j - y_hat_logit)), so

        grad_W J_I = -grad_W y_I + grad_W y_{y_hat} + R,   R = grad_W log(1 + sum_{j != y_hat} e^{y_j - y_{y_hat}}),

    where R = (p - delta_{y_hat}) h^T is the same for every question I. For a well-trained (confident)
    network R vanishes: ||R||_F = ||p - delta_{y_hat}|| ||h|| <= sqrt(2) (1 - p_{y_hat}) ||h||, so each
    question's gradient is, up to R, the change of the relation between y_I and y_{y_hat} alone. (The
    slides print the second term of the lemma in a closed form, ``log(1 + y_hat / 2)`` in our copy, that we
    could not check against the paper; this decomposition is exact and holds for any network.)

    ``x`` (N, C, H, W). Returns a dict of tensors (float64, on ``x``'s device):

    * ``"gradient"`` (N, K, K, D): grad_W J_I for every question I (closed form (p - delta_I) h^T);
    * ``"relation"`` (N, K, K, D): grad_W (y_{y_hat} - y_I) = (delta_{y_hat} - delta_I) h^T;
    * ``"remainder"`` (N, K, D): R, shared by all questions;
    * ``"bound"`` (N,): sqrt(2) (1 - p_{y_hat}) ||h||, the bound on ||R||_F;
    * ``"probs"`` (N, K), ``"predicted"`` (N,), ``"h"`` (N, D).

    One forward pass (eval mode, restored afterwards), no backward pass; the tests check ``"gradient"``
    against autograd. ``classifier`` as in :func:`introspective_features`. Memory: N K^2 D numbers.
    """
    x = check_model_input(model, x)
    fc = resolve_classifier(model, classifier)
    with eval_mode(model):
        z, h = classifier_pass(model, x, fc)
    z, h = z.double(), h.double()
    k = z.shape[1]
    p = torch.softmax(z, 1)
    predicted = z.argmax(1)
    eye = torch.eye(k, dtype=z.dtype, device=z.device)
    top = eye[predicted]                                             # delta_{y_hat} (N, K)
    outer = lambda e: e.unsqueeze(-1) * h.view(h.shape[0], *([1] * (e.dim() - 1)), -1)  # noqa: E731
    gradient = outer(p.unsqueeze(1) - eye)                           # (N, I, K, D)
    relation = outer(top.unsqueeze(1) - eye)
    remainder = outer(p - top)                                       # (N, K, D)
    bound = 2 ** 0.5 * (1 - p.gather(1, predicted[:, None])[:, 0]) * h.norm(dim=1)
    return {"gradient": gradient, "relation": relation, "remainder": remainder, "bound": bound, "probs": p,
            "predicted": predicted, "h": h}


# --------------------------------------------------------------------------------------------------
# the reflection network H
# --------------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------------
# evaluation: metrics and OOD scores come from inferml_course.uncertainty (course conventions:
# uncertainty scores higher = more uncertain, OOD is the positive class)
# --------------------------------------------------------------------------------------------------
