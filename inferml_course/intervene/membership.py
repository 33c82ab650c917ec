"""Repeated interventions on privacy: membership inference attacks (MIAs).

The question: given a trained model that we can only query, and a record (x, y), was (x, y) in
its training set? An overfitted model answers its training records more confidently than new
ones, and an attacker can read that difference from the outputs alone.

Two attacks, both black-box (they only see the model's output vectors):

* **Shadow models** (Shokri et al. 2017). Train a few models the way the target was trained, on
  data the attacker owns, split into disjoint member / non-member halves. Their outputs on
  their own members and non-members label a data set on which an attack classifier (logistic
  regression or a small MLP from scikit-learn) learns to tell "member" from "non-member". As in
  ART we train a single attack model (Shokri et al. train one per class); the features are the
  sorted log-probability vector (label-free, as in Salem et al. 2019) or, with
  ``features="label"``, the log-probability of the true class followed by the sorted vector.
* **Loss / confidence threshold** (Yeom et al. 2018; Song and Mittal 2021). A record is a member
  when its loss is small: the score is -CE(f(x), y) (or the true-class probability). The
  threshold is the mean training loss (Yeom) or the best one on shadow data; the ROC metrics
  need no threshold at all.

Metrics (Carlini et al. 2022): AUC and the **TPR at a low FPR** (1 % and 0.1 %), where a
useful privacy attack must work; ART's ``get_roc_for_fpr`` rule (the ROC point with the largest
FPR not above the target). Every membership score here is **higher = more likely a member**.

The targets and shadows are deliberately tiny (:class:`TinyMLP` on 8x8-pooled signs, trained
for seconds) so a lesson can train several; :data:`RECIPES` holds an overfitting recipe (many
epochs, no weight decay, no augmentation, no dropout) and a regularised one (weight decay,
shift augmentation, dropout, early stop).

Modes (``policy="eval"`` of :mod:`inferml_course._core.modes`): the black-box query of a deployed
model (:func:`model_outputs`, :func:`generalization_gap`) is defined at inference, so a model left
in training mode runs in eval mode for the call, with a warning that says so; every module's own
flag is restored afterwards, also on errors.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_choice, check_images, check_positive_int
from .._core.directions import ATTACK, register
from .._core.modes import guarded
from ..models import accuracy, Normalize, predict_logits, train_model
from ..uncertainty.metrics import auroc, roc_curve

__all__ = ["TinyMLP", "RECIPES", "FEATURES", "CLASSIFIERS", "train_recipe", "model_outputs", "split_pools",
           "Shadow", "train_shadow_models", "attack_features", "ShadowAttack", "loss_scores", "confidence_scores",
           "ThresholdAttack", "tpr_at_fpr", "membership_report", "generalization_gap", "membership_experiment"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('AUC', True, quantity='membership-inference AUC (higher = more leakage)', family="intervene", kind=ATTACK)
register('tpr_at_fpr', True, quantity='membership-inference TPR at a low FPR (higher = more leakage)', family="intervene", kind=ATTACK)
register('TPR@1%FPR', True, quantity='membership-inference TPR at 1 % FPR (higher = more leakage)', family="intervene", kind=ATTACK)
register('TPR@0.1%FPR', True, quantity='membership-inference TPR at 0.1 % FPR (higher = more leakage)', family="intervene", kind=ATTACK)
register('advantage', True, quantity='membership advantage max(TPR - FPR) (higher = more leakage)', family="intervene", kind=ATTACK)

#: Attack-model inputs: sorted log-probabilities, or the true class's log-probability first.
FEATURES = ("sorted", "label")
#: Attack classifiers (scikit-learn): logistic regression or a small multi-layer perceptron.
CLASSIFIERS = ("logistic", "mlp")

#: Training recipes of the targets and shadows (keyword arguments of :func:`train_recipe`).
RECIPES = {
    "overfit": {"epochs": 60, "weight_decay": 0.0, "max_shift": 0, "dropout": 0.0, "lr": 3e-3},
    "regularised": {"epochs": 6, "weight_decay": 0.1, "max_shift": 2, "dropout": 0.5, "lr": 3e-3},
}


class TinyMLP(nn.Module):
    """normalize -> average-pool by ``pool`` -> flatten -> linear -> ReLU -> dropout -> linear.

    About 25 000 parameters for 3x32x32 inputs with ``pool=4`` and ``hidden=128``; it trains on
    a few hundred images in a second, which is what shadow-model attacks need.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 9, image_size: int = 32, pool: int = 4,
                 hidden: int = 128, dropout: float = 0.0):
        super().__init__()

        self.normalize = Normalize(in_channels)
        self.pool = nn.AvgPool2d(pool)
        side = image_size // pool
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * side * side, hidden), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, num_classes))
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) for images (N, C, H, W) in [0, 1]."""
        return self.net(self.pool(self.normalize(x)))


@checked
def train_recipe(images: torch.Tensor, labels: torch.Tensor, recipe="overfit", num_classes: int | None = None,
                 seed: int = 0, progress: bool = True, description: str | None = None) -> nn.Module:
    """A :class:`TinyMLP` trained on ``images`` with ``recipe`` (a name in :data:`RECIPES` or a dict
    with ``epochs, weight_decay, max_shift, dropout, lr``), via :func:`inferml_course.models.train_model`
    (AdamW, one-cycle schedule, batch 64). Deterministic given ``seed``; returned in eval mode."""

    check_images(images, "images")
    if isinstance(recipe, str):
        recipe = RECIPES[check_choice(recipe, RECIPES, "recipe")]
    missing = {"epochs", "weight_decay", "max_shift", "dropout", "lr"} - set(recipe)
    if missing:
        raise ValueError(f"recipe is missing {sorted(missing)}")
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyMLP(images.shape[1], k, images.shape[-1], dropout=recipe["dropout"])
    train_model(model, images, labels, epochs=recipe["epochs"], lr=recipe["lr"], batch_size=64,
                weight_decay=recipe["weight_decay"], seed=seed, max_shift=recipe["max_shift"], progress=progress,
                description=description or "training")
    return model.eval()


@guarded(policy="eval")
@checked
def model_outputs(model: nn.Module, images: torch.Tensor, batch_size="auto") -> torch.Tensor:
    """The black-box view of ``model``: its logits (N, K) on ``images`` (eval mode, mode restored)."""

    return predict_logits(model, images, batch_size)


# ------------------------------------------------------------------------------------- data pools
@checked
def split_pools(n_total: int, n_members: int, n_shadow: int, seed: int = 0) -> dict:
    """Disjoint index sets for one target and ``n_shadow`` shadow models, each with ``n_members``
    members and as many non-members: ``{"target_in", "target_out", "shadow_in": [...],
    "shadow_out": [...]}`` (LongTensors). Needs ``2 n_members (1 + n_shadow) <= n_total``."""
    check_positive_int(n_total, "n_total")
    check_positive_int(n_members, "n_members")
    if isinstance(n_shadow, bool) or not isinstance(n_shadow, int) or n_shadow < 0:
        raise ValueError(f"n_shadow must be a non-negative integer, got {n_shadow!r}")
    need = 2 * n_members * (1 + n_shadow)
    if need > n_total:
        raise ValueError(f"n_total = {n_total} images are too few for disjoint pools: need 2 * n_members * "
                         f"(1 + n_shadow) = {need}")
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(int(seed)))
    blocks = perm[:need].view(1 + n_shadow, 2, n_members)
    return {"target_in": blocks[0, 0], "target_out": blocks[0, 1],
            "shadow_in": list(blocks[1:, 0]), "shadow_out": list(blocks[1:, 1])}


@dataclass
class Shadow:
    """One shadow model with the indices of its members and non-members in the attacker's data."""

    model: nn.Module
    members: torch.Tensor
    nonmembers: torch.Tensor
    history: list = field(default_factory=list)


@checked
def train_shadow_models(images: torch.Tensor, labels: torch.Tensor, members: list, nonmembers: list,
                        recipe="overfit", num_classes: int | None = None, seed: int = 0,
                        progress: bool = True) -> list[Shadow]:
    """Train one shadow model per ``members[i]`` index set (disjoint data, the attacker's own),
    with the target's ``recipe``; model i uses seed ``seed + i``."""
    if len(members) != len(nonmembers) or not members:
        raise ValueError("members and nonmembers must be non-empty lists of the same length (one per shadow)")
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    shadows = []
    for i, (inside, outside) in enumerate(zip(members, nonmembers)):
        model = train_recipe(images[inside], labels[inside], recipe, k, seed + i, progress,
                             f"shadow {i + 1}/{len(members)}")
        shadows.append(Shadow(model, inside, outside))
    return shadows


# --------------------------------------------------------------------------------------- features
def _check_outputs(logits, labels, argument: str = "logits"):
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"{argument} must be a floating tensor of shape (N, K), got {shape}")
    if logits.shape[0] == 0:
        raise ValueError(f"{argument} is empty (N = 0)")
    if not torch.isfinite(logits).all():
        raise ValueError(f"{argument} contains NaN or infinite values")
    if labels is None:
        return logits, None
    labels = torch.as_tensor(labels)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must hold integer class indices, got dtype {labels.dtype}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")
    labels = labels.to(device=logits.device, dtype=torch.long)
    if bool(((labels < 0) | (labels >= logits.shape[1])).any()):
        raise ValueError(f"labels out of range: class indices must be from 0 to {logits.shape[1] - 1}")
    return logits, labels


@checked
def attack_features(logits: torch.Tensor, labels=None, features: str = "sorted") -> torch.Tensor:
    """Inputs (N, F) of the shadow-model attack, from the target's logits (N, K).

    ``"sorted"``: log-softmax sorted in decreasing order (K features, no label needed).
    ``"label"``: log p(y | x) of the true class, then the sorted vector (K + 1 features).
    Log-probabilities (clamped at -50) rather than probabilities: members and non-members differ
    in how close the top probability is to 1, which a linear model sees on a log scale.
    """
    check_choice(features, FEATURES, "features")
    logits, labels = _check_outputs(logits, labels)
    logp = torch.log_softmax(logits.double(), 1).clamp_min(-50)
    ordered = logp.sort(1, descending=True).values
    if features == "sorted":
        return ordered.float()
    if labels is None:
        raise ValueError("labels are required for features='label'")
    return torch.cat([logp.gather(1, labels[:, None]), ordered], 1).float()


@checked
def loss_scores(logits: torch.Tensor, labels) -> torch.Tensor:
    """Membership score -CE(f(x), y) (N,), **higher = more likely a member** (a low loss)."""
    logits, labels = _check_outputs(logits, labels)
    return -F.cross_entropy(logits.double(), labels, reduction="none").float()


@checked
def confidence_scores(logits: torch.Tensor, labels) -> torch.Tensor:
    """Membership score p(y | x) of the true class (N,), **higher = more likely a member**."""
    logits, labels = _check_outputs(logits, labels)
    return torch.softmax(logits.double(), 1).gather(1, labels[:, None])[:, 0].float()


class ShadowAttack:
    """The attack classifier of a shadow-model attack.

    ``fit`` takes the shadow models' outputs on their members and non-members; ``score`` returns
    the member probability (N,) of new records, **higher = more likely a member**. The classifier
    is scikit-learn's ``LogisticRegression`` (``"logistic"``) or ``MLPClassifier(hidden=(64,))``
    with early stopping (``"mlp"``), both after a ``StandardScaler``.
    """

    def __init__(self, classifier: str = "logistic", features: str = "sorted", seed: int = 0):
        self.classifier = check_choice(classifier, CLASSIFIERS, "classifier")
        self.features = check_choice(features, FEATURES, "features")
        self.seed = seed
        self.pipeline = None

    def _build(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.classifier == "logistic":
            clf = LogisticRegression(max_iter=2000)
        else:
            clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, early_stopping=True, random_state=self.seed)
        return make_pipeline(StandardScaler(), clf)

    def fit(self, member_logits, member_labels, nonmember_logits, nonmember_labels) -> "ShadowAttack":
        """Learn "member" (1) vs "non-member" (0) from shadow outputs on their own members / non-members."""
        a = attack_features(member_logits, member_labels, self.features)
        b = attack_features(nonmember_logits, nonmember_labels, self.features)
        x = torch.cat([a, b]).numpy()
        y = np.concatenate([np.ones(len(a)), np.zeros(len(b))])
        self.pipeline = self._build().fit(x, y)
        return self

    def fit_shadows(self, shadows: list[Shadow], images: torch.Tensor, labels: torch.Tensor) -> "ShadowAttack":
        """``fit`` on every shadow model's outputs (queried on ``images[members]`` and ``images[nonmembers]``)."""
        if not shadows:
            raise ValueError("shadows is empty: train at least one shadow model")
        parts = [[], [], [], []]
        for s in shadows:
            parts[0].append(model_outputs(s.model, images[s.members]))
            parts[1].append(labels[s.members])
            parts[2].append(model_outputs(s.model, images[s.nonmembers]))
            parts[3].append(labels[s.nonmembers])
        return self.fit(*(torch.cat(p) for p in parts))

    def score(self, logits, labels=None) -> torch.Tensor:
        """Member probability (N,) of the records whose target outputs are ``logits``."""
        if self.pipeline is None:
            raise RuntimeError("call fit (or fit_shadows) before score")
        x = attack_features(logits, labels, self.features).numpy()
        return torch.from_numpy(self.pipeline.predict_proba(x)[:, 1]).float()


class ThresholdAttack:
    """Member when the score (-loss or confidence) is at least a threshold tau.

    ``fit_yeom(train_losses)``: tau = -(mean training loss) (Yeom et al. 2018; the attacker is
    assumed to know the average training loss). ``fit(member_scores, nonmember_scores)``: the tau
    that maximises the balanced accuracy on shadow data.
    """

    def __init__(self):
        self.threshold = None

    def fit_yeom(self, train_losses) -> "ThresholdAttack":
        losses = torch.as_tensor(train_losses, dtype=torch.float64)
        if losses.dim() != 1 or losses.numel() == 0 or not torch.isfinite(losses).all():
            raise ValueError("train_losses must be a non-empty 1-D tensor of finite losses")
        self.threshold = float(-losses.mean())
        return self

    def fit(self, member_scores, nonmember_scores) -> "ThresholdAttack":
        a = torch.as_tensor(member_scores, dtype=torch.float64).flatten()
        b = torch.as_tensor(nonmember_scores, dtype=torch.float64).flatten()
        if a.numel() == 0 or b.numel() == 0:
            raise ValueError("member_scores and nonmember_scores must both be non-empty")
        candidates = torch.cat([a, b]).unique()
        tpr = (a[None] >= candidates[:, None]).double().mean(1)
        fpr = (b[None] >= candidates[:, None]).double().mean(1)
        self.threshold = float(candidates[int((tpr - fpr).argmax())])
        return self

    def predict(self, scores) -> torch.Tensor:
        """True (member) where ``scores >= threshold``."""
        if self.threshold is None:
            raise RuntimeError("call fit or fit_yeom before predict")
        return torch.as_tensor(scores) >= self.threshold


# ---------------------------------------------------------------------------------------- metrics
def _check_membership(scores, is_member):
    scores = torch.as_tensor(scores)
    is_member = torch.as_tensor(is_member)
    if scores.dim() != 1 or scores.numel() == 0 or not scores.is_floating_point():
        raise ValueError(f"scores must be a non-empty 1-D float tensor, got shape {tuple(scores.shape)}")
    if not torch.isfinite(scores).all():
        raise ValueError("scores contains NaN or infinite values")
    if is_member.shape != scores.shape:
        raise ValueError(f"is_member must have the shape of scores {tuple(scores.shape)}, got {tuple(is_member.shape)}")
    if is_member.dtype != torch.bool:
        if is_member.is_floating_point() or not bool(((is_member == 0) | (is_member == 1)).all()):
            raise ValueError("is_member must be boolean or hold only 0 and 1")
        is_member = is_member.bool()
    if bool(is_member.all()) or not bool(is_member.any()):
        raise ValueError("is_member must contain both members and non-members")
    return scores, is_member.to(scores.device)


@checked
def tpr_at_fpr(scores, is_member, fpr: float = 0.01) -> float:
    """True-positive rate of the attack at a false-positive rate of at most ``fpr``: **higher = more
    leakage**. The ROC point with the largest FPR not above ``fpr`` (ART's ``get_roc_for_fpr`` rule);
    with n non-members the smallest non-zero FPR is 1/n, so ``fpr < 1/n`` reads the FPR = 0 point.

    The operating points are the thresholds a score can take: t flags ``score >= t`` as a member,
    one point per distinct score plus (0, 0) at t = +inf, so tied scores are flagged together and
    never split. FPR is (false positives) / n in float64, and a point whose FPR equals ``fpr``
    (within 1e-12) counts: 6 of 20 non-members flagged is admissible at ``fpr=0.3``."""

    if isinstance(fpr, bool) or not isinstance(fpr, numbers.Real) or not 0 <= fpr <= 1:
        raise ValueError(f"fpr must be a number in [0, 1], got {fpr!r}")
    scores, is_member = _check_membership(scores, is_member)
    fprs, tprs, _ = roc_curve(scores, is_member)
    ok = fprs <= fpr + 1e-12
    return float(tprs[ok].max())


@checked
def membership_report(scores, is_member, fprs=(0.01, 0.001)) -> dict:
    """``{"AUC", "TPR@1%FPR", "TPR@0.1%FPR", "advantage"}`` of a membership score (higher = member).

    AUC: 0.5 = chance, **higher = more leakage**; TPR at FPR: higher = more leakage; advantage:
    max over thresholds of TPR - FPR (Yeom et al.), 0 = no leakage.
    """

    scores, is_member = _check_membership(scores, is_member)
    fpr, tpr, _ = roc_curve(scores, is_member)
    out = {"AUC": auroc(scores, is_member)}
    for f in fprs:
        name = f"TPR@{f * 100:g}%FPR"
        register(name, base="tpr_at_fpr")  # the direction registry knows every key of the report
        out[name] = tpr_at_fpr(scores, is_member, f)
    out["advantage"] = float((tpr - fpr).max())
    return out


@guarded(policy="eval")
@checked
def generalization_gap(model: nn.Module, train_images, train_labels, test_images, test_labels) -> dict:
    """Train and test accuracy and their difference (the gap that membership attacks feed on)."""

    train = accuracy(model, train_images, train_labels)
    test = accuracy(model, test_images, test_labels)
    return {"train accuracy": train, "test accuracy": test, "gap": train - test}


@checked
def membership_experiment(images: torch.Tensor, labels: torch.Tensor, recipe="overfit", n_members: int = 400,
                          n_shadow: int = 3, classifier: str = "logistic", features: str = "sorted",
                          seed: int = 0, progress: bool = True) -> dict:
    """The whole pipeline for one training recipe, on disjoint pools of ``images``:

    target model (``n_members`` members, as many held-out non-members), ``n_shadow`` shadow models
    trained the same way on the attacker's own disjoint data, the shadow attack, the loss-threshold
    attack (threshold-free metrics plus Yeom's threshold) and the generalisation gap.

    Returns a dict with ``target``, ``shadows``, ``attack`` (the fitted :class:`ShadowAttack`),
    ``is_member`` (members first), ``scores`` ({"shadow": ..., "loss": ...}), ``reports`` (one
    :func:`membership_report` per attack), ``gap`` (:func:`generalization_gap`) and ``yeom`` (the
    accuracy of Yeom's threshold rule on the balanced member / non-member set).
    """
    check_images(images, "images")
    k = int(labels.max()) + 1
    pools = split_pools(len(images), n_members, n_shadow, seed)
    name = recipe if isinstance(recipe, str) else "custom"
    target = train_recipe(images[pools["target_in"]], labels[pools["target_in"]], recipe, k, seed, progress,
                          f"target ({name})")
    shadows = train_shadow_models(images, labels, pools["shadow_in"], pools["shadow_out"], recipe, k, seed + 1,
                                  progress)
    attack = ShadowAttack(classifier, features, seed).fit_shadows(shadows, images, labels)
    idx = torch.cat([pools["target_in"], pools["target_out"]])
    is_member = torch.cat([torch.ones(n_members, dtype=torch.bool), torch.zeros(n_members, dtype=torch.bool)])
    logits = model_outputs(target, images[idx])
    y = labels[idx]
    scores = {"shadow": attack.score(logits, y), "loss": loss_scores(logits, y)}
    train_losses = -scores["loss"][:n_members]
    yeom = ThresholdAttack().fit_yeom(train_losses)
    yeom_acc = float((yeom.predict(scores["loss"]) == is_member).float().mean())
    gap = generalization_gap(target, images[pools["target_in"]], labels[pools["target_in"]],
                             images[pools["target_out"]], labels[pools["target_out"]])
    return {"target": target, "shadows": shadows, "attack": attack, "is_member": is_member, "scores": scores,
            "reports": {k_: membership_report(v, is_member) for k_, v in scores.items()}, "gap": gap,
            "yeom": yeom_acc, "pools": pools}
