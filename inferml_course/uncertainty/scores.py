"""Single-pass uncertainty and confidence scores, and the registry that ranks them all the same way.

Every model-level function has the signature ``f(model, x, **options) -> Tensor (N,)`` with images
``x`` (N, C, H, W) in [0, 1]. Where a paper defines a *confidence* (MSP, margin, max logit, ODIN,
GradNorm, GradTrust) the function returns the paper's quantity under the paper's name, and the
registry :data:`SCORES` negates it. So ``uncertainty(name, model, x)`` is always
**higher = more uncertain**, and every table of the course ranks the same way.

==================  ================================================  ===============  ===========
name                what the function returns                         paper direction  registry
==================  ================================================  ===============  ===========
``msp``             max softmax probability                           confidence       ``-msp``
``entropy``         entropy of the softmax, nats                      uncertainty      as is
``margin``          p(1st) - p(2nd), softmax probabilities            confidence       ``-margin``
``nll``             -log softmax at the predicted label               uncertainty      as is
``max_logit``       the largest logit (what GradTrust's code calls    confidence       ``-max_logit``
                    "NLL / log-likelihood")
``energy``          E = -T logsumexp(z / T)                           uncertainty      as is
``odin``            max softmax(f(x~)/T) of a perturbed input         confidence       ``-odin``
``mahalanobis``     min_k squared Mahalanobis distance of features    uncertainty      as is
``mc_dropout``      entropy of the mean MC-dropout prediction         uncertainty      as is
``ensemble``        entropy of the mean ensemble prediction           uncertainty      as is
``gradnorm``        L1 norm of GradNorm's last-layer gradient         confidence       ``-gradnorm``
                    (``variant="gradtrust_demo"``: minus the L2 norm
                    of the GradTrust demo's variant, its "trust")
``purview``         mean squared per-layer gradient norm              uncertainty      as is
``gradtrust``       GradTrust: a **trust** score, higher = more       trust            ``-gradtrust``
                    trustworthy (``gradtrust_topk`` likewise, in
                    either orientation, ``ratio=``)
==================  ================================================  ===============  ===========

The sampling scores (``mc_dropout``, ``ensemble`` and their ``_mi`` parts) live in :mod:`.bayesian`
and the gradient scores (``gradnorm``, ``purview``, ``gradtrust``) in :mod:`.trust`; the registry lists
them all. Each score is registered beside its function with :func:`~.registry.score`, which records
whether it returns a confidence or trust (``higher_is_confident``), its label, its reference and how
:func:`score_batch` computes it from the shared pass, and declares its direction in the package's
direction registry (:mod:`inferml_course._core.directions`). So one name is one quantity: ``trust.gradtrust(model, x)`` is the trust,
``uncertainty("gradtrust", model, x)`` its negative, the same ranking read the other way.

A note on "NLL". The negative log-likelihood of the *predicted* label is ``-log max_k p_k``: a
monotone function of the MSP, so it ranks samples exactly like the MSP. The GradTrust and VOICE
code compute ``-F.nll_loss(logits, pred)`` on raw logits, which returns the largest *logit*
``z_pred``, not a log-probability. We expose both: :func:`nll` (the true quantity) and
:func:`max_logit` (the authors' number). They rank samples differently, because the max logit
ignores how much mass the other classes get.

Modes (``policy="eval"`` of :mod:`inferml_course._core.modes`): every score here is defined at
inference, so a model left in training mode runs in eval mode for the call, with a warning that says
so; every module's own flag is restored afterwards, also on errors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from .._core.arguments import checked
from . import bayesian, trust
from .._core.checks import check_choice, check_labels, check_logits, check_model_input, check_number
from .._core.adapter import forward_logits, forward_with_features, penultimate_features
from .._core.batching import batches, check_batch_size
from .._core.modes import eval_mode, guarded
from .._core.targets import check_model_output
from .registry import REGISTRY, ScoreSpec, score

__all__ = [
    "msp", "entropy", "margin", "nll", "max_logit", "energy", "odin", "odin_perturb", "fit_mahalanobis",
    "MahalanobisStats", "mahalanobis", "mahalanobis_from_features", "logit_scores", "ScoreSpec", "SCORES",
    "get_score", "uncertainty", "available_scores", "compute_scores", "score_batch", "ScoreResult", "ScorePass",
    "score",
]


# ------------------------------------------------------------------------------ logit-level functions
@checked
def logit_scores(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every softmax/logit score of logits (N, K), each (N,), in the *paper's* direction.

    Keys: ``msp``, ``entropy``, ``margin``, ``nll``, ``max_logit``, ``energy`` (T = 1).
    """
    logits = check_logits(logits)
    log_p = torch.log_softmax(logits.float() if logits.dtype == torch.float16 else logits, dim=1)
    p = log_p.exp()
    top2 = p.topk(2, dim=1).values
    return {
        "msp": top2[:, 0],
        "entropy": -(p * log_p).sum(1),  # 0 * log 0 = 0: log_softmax is finite, p underflows to 0
        "margin": top2[:, 0] - top2[:, 1],
        "nll": -log_p.max(1).values,
        "max_logit": logits.max(1).values,
        "energy": -torch.logsumexp(logits, dim=1),
    }


def _from_logits(key: str):
    """The registry's ``from_pass`` of a logit score: ``logit_scores(pass.logits)[key]``, computed once per pass."""
    return lambda p: p.shared("logit_scores", lambda: logit_scores(p.logits))[key]


def _prepare(model, x, batch_size, argument="x"):
    """Check the arguments every score shares; ``x`` comes back in the model's parameter dtype."""
    x = check_model_input(model, x, argument)
    check_batch_size(batch_size)
    return x


@score("msp", confidence=True, quantity="max softmax probability (a confidence)", family="softmax",
       reference="Hendrycks & Gimpel, ICLR 2017", label="Softmax", order=10, from_pass=_from_logits("msp"))
@guarded(policy="eval")
@checked
def msp(model, x: torch.Tensor, batch_size="auto") -> torch.Tensor:
    """Maximum softmax probability (Hendrycks & Gimpel 2017): a confidence, **higher = more confident**.

    The registry entry ``"msp"`` returns ``-msp`` (higher = more uncertain).
    """
    x = _prepare(model, x, batch_size)
    return torch.softmax(forward_logits(model, x, batch_size), 1).max(1).values


@score("entropy", confidence=False, quantity="softmax entropy (nats)", family="softmax",
       reference="Shannon entropy of the predictive", label="Entropy", order=20, from_pass=_from_logits("entropy"))
@guarded(policy="eval")
@checked
def entropy(model, x: torch.Tensor, batch_size="auto") -> torch.Tensor:
    """Shannon entropy of the softmax in nats, in [0, log K]: **higher = more uncertain**."""
    x = _prepare(model, x, batch_size)
    return logit_scores(forward_logits(model, x, batch_size))["entropy"]


@score("margin", confidence=True, quantity="p(1st) - p(2nd) (a confidence)", family="softmax",
       reference="hypothesis margin (Bartlett et al. 1998)", label="Margin", order=30, from_pass=_from_logits("margin"))
@guarded(policy="eval")
@checked
def margin(model, x: torch.Tensor, batch_size="auto") -> torch.Tensor:
    """Hypothesis margin p(1st) - p(2nd) of the softmax, in [0, 1]: a confidence, **higher = more confident**.

    The registry entry ``"margin"`` returns ``-margin``.
    """
    x = _prepare(model, x, batch_size)
    return logit_scores(forward_logits(model, x, batch_size))["margin"]


@score("nll", confidence=False, quantity="-log p(predicted label)", family="softmax",
       reference="negative log-likelihood at the prediction", label="NLL", order=40, from_pass=_from_logits("nll"))
@guarded(policy="eval")
@checked
def nll(model, x: torch.Tensor, batch_size="auto") -> torch.Tensor:
    """Negative log-likelihood of the predicted label, ``-log softmax(z)[argmax z]`` (nats, >= 0).

    **Higher = more uncertain.** No ground truth is needed at inference: the prediction stands in
    for the label, as the tutorial notes. It equals ``-log msp``, so it ranks like the MSP.
    """
    x = _prepare(model, x, batch_size)
    return logit_scores(forward_logits(model, x, batch_size))["nll"]


@score("max_logit", confidence=True, quantity="largest logit (GradTrust code's 'NLL'; a confidence)",
       family="logit", reference="Hendrycks et al. 2022; GradTrust demo.py", label="max logit", order=50,
       from_pass=_from_logits("max_logit"))
@guarded(policy="eval")
@checked
def max_logit(model, x: torch.Tensor, batch_size="auto") -> torch.Tensor:
    """The largest logit ``max_k z_k``: a confidence, **higher = more confident**.

    This is the number that the GradTrust and VOICE code report as "NLL / log-likelihood"
    (``-F.nll_loss`` applied to raw logits). The registry entry ``"max_logit"`` negates it.
    """
    x = _prepare(model, x, batch_size)
    return forward_logits(model, x, batch_size).max(1).values


@score("energy", confidence=False, quantity="-T logsumexp(z/T)", family="logit", reference="Liu et al., NeurIPS 2020",
       label="Energy", order=60, from_pass=_from_logits("energy"))
@guarded(policy="eval")
@checked
def energy(model, x: torch.Tensor, temperature: float = 1.0, batch_size="auto") -> torch.Tensor:
    """Energy ``E(x) = -T logsumexp(z / T)`` (Liu et al. 2020): **higher = more uncertain** (more OOD).

    Liu et al. threshold ``-E`` (higher = in-distribution); we return ``E`` itself.
    """
    x = _prepare(model, x, batch_size)
    t = check_number(temperature, "temperature")
    return -t * torch.logsumexp(forward_logits(model, x, batch_size) / t, dim=1)


# ---------------------------------------------------------------------------------------------- ODIN
@guarded(policy="eval")
@checked
def odin_perturb(model, x: torch.Tensor, temperature: float = 1000.0, epsilon: float = 0.0014,
                 batch_size="auto") -> tuple[torch.Tensor, torch.Tensor]:
    """ODIN's input pre-processing: ``x~ = x - eps * sign(grad_x CE(f(x)/T, argmax f(x)))``.

    The step is taken in **pixel space** (the course's models normalise inside), so ``eps`` is in
    units of [0, 1] pixel values. The original code perturbs the *normalised* input and divides the
    sign by the per-channel std, which is the same step of eps in pixel space, so our eps equals the
    original's (``tests/test_oracle_pytorch_ood.py`` checks both forms). ``sign`` follows the original:
    ``+1`` where the gradient is ``>= 0``. The perturbed image is not clipped to [0, 1], as in the
    original. Returns ``(x_tilde, predicted_labels)``; per-sample gradients come from one backward
    pass per batch (samples are independent in eval mode). Parameter ``.grad`` is never touched.
    """
    x = _prepare(model, x, batch_size)
    t = check_number(temperature, "temperature")
    eps = check_number(epsilon, "epsilon", allow_zero=True)
    outs, preds = [], []
    with eval_mode(model), torch.enable_grad():
        for chunk in batches(x, batch_size, model=model, backward=True):
            xi = chunk.detach().clone().requires_grad_(True)
            logits = check_model_output(model(xi), len(xi))
            pred = logits.argmax(1)
            loss = F.cross_entropy(logits / t, pred, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xi)
            step = torch.where(grad >= 0, 1.0, -1.0).to(chunk.dtype)
            outs.append((chunk - eps * step).detach())
            preds.append(pred.detach())
    return torch.cat(outs), torch.cat(preds)


@score("odin", confidence=True, quantity="max softmax(f(x~)/T) of the perturbed input (a confidence)",
       family="perturbation", reference="Liang et al., ICLR 2018", label="ODIN", order=70,
       variants={"odin_t100": ({"temperature": 100.0}, "ODIN (T = 100, GradTrust demo)")})
@guarded(policy="eval")
@checked
def odin(model, x: torch.Tensor, temperature: float = 1000.0, epsilon: float = 0.0014,
         batch_size="auto") -> torch.Tensor:
    """ODIN score (Liang et al. 2018): ``max_k softmax(f(x~)/T)_k`` of the perturbed input.

    Paper defaults T = 1000, eps = 0.0014 (see :func:`odin_perturb` for pixel-space units). The GradTrust
    demo, the source of the tutorial's ODIN column, uses T = 100 (the registry's variant ``odin_t100``); its
    step of 0.0014 is taken on the normalised input without dividing by the std, a smaller step in pixels.
    A confidence, **higher = more in-distribution**; the registry entry ``"odin"`` negates it.
    Cost: one forward and one backward pass, then one more forward pass.
    """
    x_tilde, _ = odin_perturb(model, x, temperature, epsilon, batch_size)
    t = float(temperature)
    return torch.softmax(forward_logits(model, x_tilde, batch_size) / t, 1).max(1).values


# ---------------------------------------------------------------------------------------- Mahalanobis
@dataclass(frozen=True)
class MahalanobisStats:
    """Class means (K, D) and the tied precision matrix (D, D) of penultimate features, in float64 (the
    precision of real features can be ill-conditioned: float32 loses the distances)."""

    means: torch.Tensor
    precision: torch.Tensor

    def to(self, device) -> "MahalanobisStats":
        return MahalanobisStats(self.means.to(device), self.precision.to(device))


@guarded(policy="eval")
@checked
def fit_mahalanobis(model, images: torch.Tensor, labels: torch.Tensor, batch_size="auto",
                    ridge: float = 1e-6, features=None, classifier=None) -> MahalanobisStats:
    """Fit class means and ONE shared (tied) covariance on training features (Lee et al. 2018).

    Features are the penultimate features: ``features(x)`` for a callable ``features``, else the input
    of the classifier (``classifier=``, ``model.last_layer`` or the final ``nn.Linear``). The covariance
    is the pooled within-class scatter divided by N (a global scale does not change the ranking),
    plus ``ridge * mean variance`` on the diagonal; the precision is its (pseudo-)inverse.
    """
    images = _prepare(model, images, batch_size, "images")
    ridge = check_number(ridge, "ridge", allow_zero=True)
    if features is None:
        logits, h = forward_with_features(model, images, batch_size, classifier)
        k = logits.shape[1]
    else:
        h = penultimate_features(model, images, batch_size, features)
        k = forward_logits(model, images[:1]).shape[1]
    labels = check_labels(labels, "labels", images.shape[0], k).to(h.device)
    h = h.double()
    counts = torch.bincount(labels, minlength=k)
    if (counts == 0).any():
        raise ValueError(f"labels must contain every class 0..{k - 1} to fit class means; "
                         f"missing: {torch.nonzero(counts == 0).flatten().tolist()}")
    means = torch.zeros(k, h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, labels, h)
    means = means / counts[:, None]
    centred = h - means[labels]
    cov = centred.T @ centred / h.shape[0]
    cov = cov + ridge * cov.diagonal().mean().clamp_min(1e-12) * torch.eye(cov.shape[0], dtype=h.dtype,
                                                                           device=h.device)
    precision = torch.linalg.pinv(cov, hermitian=True)  # pseudo-inverse: dead (all-zero) features are fine
    return MahalanobisStats(means, (precision + precision.T) / 2)


@checked
def mahalanobis_from_features(h: torch.Tensor, stats: MahalanobisStats) -> torch.Tensor:
    """``min_k (h - mu_k)^T P (h - mu_k)`` for features h (N, D): **higher = more uncertain**.

    Computed in float64 after moving the origin to the mean of the class means (the distance does not
    change, and the expansion h^T P h - 2 h^T P mu + mu^T P mu no longer cancels when the features
    share a large offset); returned in the features' floating dtype."""
    if not isinstance(stats, MahalanobisStats):
        raise TypeError(f"stats must be a MahalanobisStats from fit_mahalanobis, got {type(stats).__name__}")
    if h.shape[1] != stats.means.shape[1]:
        raise ValueError(f"features have dimension {h.shape[1]} but stats were fitted on {stats.means.shape[1]}")
    stats = stats.to(h.device)
    precision, means = stats.precision.double(), stats.means.double()
    origin = means.mean(0)
    hc, mc = h.double() - origin, means - origin
    hp = hc @ precision                                           # (N, D)
    quad_h = (hp * hc).sum(1, keepdim=True)                       # h^T P h
    quad_mu = ((mc @ precision) * mc).sum(1)                      # mu^T P mu
    d2 = quad_h - 2 * hp @ mc.T + quad_mu[None]                   # (N, K)
    out_dtype = h.dtype if h.is_floating_point() else torch.float32
    return d2.clamp_min(0).min(1).values.to(out_dtype)


@score("mahalanobis", confidence=False, quantity="min_k squared Mahalanobis distance", family="distance",
       reference="Lee et al., NeurIPS 2018 (tied covariance)", label="Mahalanobis", order=80,
       from_pass=lambda p: _mahalanobis_from_pass(p), features=True, applies=lambda p: p.mahalanobis_stats is not None)
@guarded(policy="eval")
@checked
def mahalanobis(model, x: torch.Tensor, stats: MahalanobisStats | None = None, batch_size="auto",
                features=None, classifier=None) -> torch.Tensor:
    """Single-pass distance score: squared Mahalanobis distance of the features to the nearest class mean.

    **Higher = more uncertain.** ``stats`` comes from :func:`fit_mahalanobis` on *training* data.
    (We report ``min_k d_k^2``; Lee et al.'s confidence is ``-min_k d_k^2 / 2``, same ranking.)
    ``features`` / ``classifier``: as in :func:`fit_mahalanobis` (use the same ones).
    """
    x = _prepare(model, x, batch_size)
    if stats is None:
        raise ValueError("mahalanobis needs stats=fit_mahalanobis(model, train_images, train_labels)")
    h = penultimate_features(model, x, batch_size, features, classifier)
    return mahalanobis_from_features(h, stats)


def _mahalanobis_from_pass(p) -> torch.Tensor:
    if p.mahalanobis_stats is None:
        raise ValueError("the mahalanobis score needs mahalanobis_stats=fit_mahalanobis(...)")
    return mahalanobis_from_features(p.features, p.mahalanobis_stats)


# ------------------------------------------------------------------------------------------ registry
#: name -> :class:`ScoreSpec` (read-only, in table order); ``SCORES[name](model, x)`` is an uncertainty,
#: higher = more uncertain. Each score is registered beside its function with :func:`~.registry.score`.
SCORES = REGISTRY


@checked
def available_scores() -> tuple[str, ...]:
    return SCORES.names()


@checked
def get_score(name: str) -> ScoreSpec:
    """The registry entry ``name`` (see :data:`SCORES`)."""
    return SCORES[check_choice(name, available_scores(), "score name")]


@checked
def uncertainty(name: str, model, x: torch.Tensor, **options) -> torch.Tensor:
    """Uncertainty score ``name`` for images ``x``: (N,), **higher = more uncertain**.

    For a name whose function returns a confidence or trust (``SCORES[name].higher_is_confident``:
    ``msp``, ``margin``, ``max_logit``, ``odin``, ``gradnorm``, ``gradtrust``, ``gradtrust_topk``) this
    is *minus* that quantity: ``uncertainty("gradtrust", model, x) == -gradtrust(model, x)``, while
    :func:`inferml_course.uncertainty.trust.gradtrust` itself returns the trust (higher = more
    trustworthy).
    """
    return get_score(name)(model, x, **options)


class ScorePass:
    """What :func:`score_batch` computes once for all its scores: the logits of one forward pass (with
    the penultimate features when a score needs them; for a model with ``member_logits``, the log of the
    members' mean probability, so the ensemble scores reuse the members' pass) and what several scores
    share (:meth:`shared`: the logit scores, the MC-dropout samples). A registered ``from_pass`` reads it."""

    def __init__(self, model, x, *, batch_size="auto", classifier=None, samples: int = 10, seed: int = 0,
                 mahalanobis_stats: MahalanobisStats | None = None, features: bool = False):
        self.model, self.x, self.batch_size, self.classifier = model, x, batch_size, classifier
        self.samples, self.seed, self.mahalanobis_stats = samples, seed, mahalanobis_stats
        self.with_features = features  # set before the first read of logits or features
        self._cache: dict = {}

    def shared(self, key: str, compute: Callable):
        """``compute()``, once per pass under ``key``."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _forward(self):
        if self.with_features:
            return forward_with_features(self.model, self.x, self.batch_size, self.classifier)
        if hasattr(self.model, "member_logits"):
            return torch.log(self.member_probs.mean(0)), None
        return forward_logits(self.model, self.x, self.batch_size), None

    @property
    def logits(self) -> torch.Tensor:
        """(N, K) logits of the deterministic forward pass."""
        return self.shared("forward", self._forward)[0]

    @property
    def features(self) -> torch.Tensor:
        """(N, D) penultimate features, the classifier's input (a pass made with ``features=True``)."""
        if not self.with_features:
            raise RuntimeError("this pass has no features: register the score with features=True")
        return self.shared("forward", self._forward)[1]

    @property
    def member_probs(self) -> torch.Tensor:
        """(M, N, K) probabilities of an ensemble's members."""
        return self.shared("member_probs", lambda: bayesian.ensemble_probs(self.model, self.x,
                                                                            batch_size=self.batch_size))


@guarded(policy="eval")
@checked
def compute_scores(model, x: torch.Tensor, names=None, *, mahalanobis_stats: MahalanobisStats | None = None,
                   samples: int = 10, seed: int = 0, batch_size="auto", odin_options: dict | None = None
                   ) -> dict[str, torch.Tensor]:
    """Several registry scores at once: ``{name: uncertainty (N,)}``, **higher = more uncertain**.

    See :func:`score_batch` (which also returns the logits) for what is shared.
    """
    return score_batch(model, x, names, mahalanobis_stats=mahalanobis_stats, samples=samples, seed=seed,
                       batch_size=batch_size, odin_options=odin_options).scores


class ScoreResult(NamedTuple):
    """``scores``: {name: uncertainty (N,)}; ``logits``: (N, K) of the same (deterministic) forward pass."""

    scores: dict
    logits: torch.Tensor


@guarded(policy="eval")
@checked
def score_batch(model, x: torch.Tensor, names=None, *, mahalanobis_stats: MahalanobisStats | None = None,
                samples: int = 10, seed: int = 0, batch_size="auto", odin_options: dict | None = None,
                classifier=None) -> ScoreResult:
    """Several registry scores at once, sharing work, and the logits of the deterministic forward pass.

    Scores are uncertainties (N,), **higher = more uncertain**. A score registered with ``from_pass``
    is computed from one :class:`ScorePass`: one (hooked) forward pass gives the logits and the last
    layer's input, from which come the softmax/logit scores, GradTrust and GradNorm (their closed
    forms, which equal the gradient route exactly, see :mod:`.trust`) and the Mahalanobis distance;
    MC dropout's total and mutual information share one set of samples, the ensemble's one members'
    pass. ODIN and Purview run their own passes. ``names`` defaults to every registry score that
    applies (its ``applies``: Mahalanobis only with ``mahalanobis_stats``, ensembles only for models
    with ``member_logits``, MC dropout only with dropout layers).
    ``classifier``: the final linear layer (default: ``model.last_layer`` or found by structure).
    """
    x = check_model_input(model, x)
    check_batch_size(batch_size)
    p = ScorePass(model, x, batch_size=batch_size, classifier=classifier, samples=samples, seed=seed,
                  mahalanobis_stats=mahalanobis_stats)
    if names is None:
        names = [n for n in available_scores() if SCORES[n].applies is None or SCORES[n].applies(p)]
    specs = [get_score(n) for n in names]
    p.with_features = any(spec.features for spec in specs)
    own_options = {"odin": dict(odin_options or {})}
    out = {}
    for spec in specs:
        if spec.shared:
            out[spec.name] = spec.sign * spec.from_pass(p)
        else:
            out[spec.name] = spec(model, x, batch_size=batch_size, **own_options.get(spec.name, {}))
    return ScoreResult(out, p.logits)
