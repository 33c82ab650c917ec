"""Which way every metric and score of the package is better: one registry, read by every table,
ranking and widget (like torchmetrics' ``higher_is_better`` and Quantus' score direction).

Each name is declared once, with ``higher_is_better`` and the quantity it stands for:

* a **metric** (AUROC, ECE, deletion AUC, MURR, ...): True when a higher value means a better method;
* an **uncertainty score** of :mod:`inferml_course.uncertainty.scores` (``msp``, ``entropy``,
  ``gradtrust``, ...): True when the function's raw output is higher for a *more confident / more
  trustworthy* prediction (a confidence or trust score, which the score registry negates into an
  uncertainty), False when it already is an uncertainty (higher = more uncertain);
* an **attack** metric (membership inference, adversarial success): True when higher means a more
  successful attack (more leakage, more flipped predictions), the quantity those functions report.

No name means two directions: :func:`register` refuses to give a known name the other direction.
A derived name (``"sign iou"``, a metric on the sign masks) is not guessed from its words: callers
pass ``directions={"sign iou": True}`` or ``base={"sign iou": "iou"}``, or register it with
``register("sign iou", base="iou")`` (what :func:`inferml_course.evaluate.merge_summaries` does for
the names its ``prefix`` creates).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ATTACK",
    "DIRECTIONS",
    "METRIC",
    "REGISTRY",
    "SCORE",
    "Direction",
    "arrow",
    "describe",
    "higher_is_better",
    "names",
    "register",
    "resolve",
    "view",
    "word",
]

METRIC, SCORE, ATTACK = "metric", "score", "attack"


@dataclass(frozen=True)
class Direction:
    """One registry entry: ``higher_is_better``, what the number is (``quantity``), where it comes from
    (``family``: the package module) and its ``kind`` (``"metric"``, ``"score"`` or ``"attack"``)."""

    name: str
    higher_is_better: bool
    quantity: str
    family: str
    kind: str = METRIC

    @property
    def text(self) -> str:
        """``"higher is better"`` or ``"lower is better"``."""
        return describe(self.higher_is_better)


_ENTRIES: dict[str, Direction] = {}
_BOOLS: dict[str, bool] = {}

#: name -> :class:`Direction` (read-only view of the registry).
REGISTRY: Mapping[str, Direction] = MappingProxyType(_ENTRIES)
#: name -> True when higher is better (read-only view of the registry).
DIRECTIONS: Mapping[str, bool] = MappingProxyType(_BOOLS)


def describe(higher: bool) -> str:
    """``"higher is better"`` or ``"lower is better"``."""
    return "higher is better" if higher else "lower is better"


def word(higher: bool) -> str:
    """``"higher"`` or ``"lower"``."""
    return "higher" if higher else "lower"


def arrow(higher: bool) -> str:
    """``"↑"`` (higher is better) or ``"↓"`` (lower is better)."""
    return "↑" if higher else "↓"


def _hint(name: str) -> str:
    known = [w for w in str(name).replace("(", " ").replace(")", " ").split() if w in _BOOLS and w != name]
    hint = f"pass directions={{{name!r}: True}} (True: higher is better, False: lower is better)"
    if known:
        k = known[-1]
        hint += (f"; if it is the metric {k!r} under another name, that is directions={{{name!r}: {_BOOLS[k]}}} "
                 f"({k!r}: {describe(_BOOLS[k])})")
    return hint


def register(name: str, higher_is_better: bool | None = None, *, base: str | None = None, quantity: str = "",
             family: str = "", kind: str | None = None) -> bool:
    """Declare the direction of ``name`` (or copy that of the registered ``base`` metric) and return it.

    Registering a known name again with the same direction is a no-op; with the other direction it is
    a ``ValueError`` (no name may mean two directions).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if (higher_is_better is None) == (base is None):
        raise TypeError("register needs exactly one of higher_is_better= (a bool) or base= (a registered name)")
    if base is not None:
        parent = _ENTRIES.get(base)
        if parent is None:
            raise ValueError(f"base metric {base!r} of {name!r} has no registered direction; {_hint(base)}")
        higher = parent.higher_is_better
        quantity = quantity or f"{parent.quantity} ({name})"
        family = family or parent.family
        kind = kind or parent.kind
    else:
        if not isinstance(higher_is_better, bool):
            raise TypeError(f"higher_is_better must be True or False, got {higher_is_better!r}")
        higher = higher_is_better
    old = _ENTRIES.get(name)
    if old is not None:
        if old.higher_is_better != higher:
            raise ValueError(f"{name!r} is registered as '{old.text}' ({old.quantity}); it cannot also mean "
                             f"'{describe(higher)}': give the other quantity its own name")
        return higher
    _ENTRIES[name] = Direction(name, higher, quantity, family, kind or METRIC)
    _BOOLS[name] = higher
    return higher


def resolve(name: str, base: Mapping | None = None) -> Direction | None:
    """The registry entry of ``name`` (through ``base[name]`` when given), or None."""
    target = (base or {}).get(name, name)
    return _ENTRIES.get(target)


def higher_is_better(name: str, directions: Mapping | None = None, base: Mapping | None = None) -> bool:
    """True when a higher value of ``name`` is better.

    ``directions`` ({name: bool}) says it for names of the caller's own (it takes precedence, for this
    call only); ``base`` ({name: registered name}) maps a derived name to the registered metric it
    is (``{"sign iou": "iou"}``). Otherwise the registry decides; an unknown name is a ValueError that
    says how to pass its direction.
    """
    if directions and name in directions:
        value = directions[name]
        if type(value).__name__ not in ("bool", "bool_"):
            raise TypeError(f"directions[{name!r}] must be True (higher is better) or False, got {value!r}")
        return bool(value)
    if base and name in base:
        target = base[name]
        if directions and target in directions:
            return higher_is_better(target, directions)
        if target not in _BOOLS:
            raise ValueError(f"base[{name!r}] = {target!r} has no registered direction; {_hint(target)}")
        return _BOOLS[target]
    if name in _BOOLS:
        return _BOOLS[name]
    raise ValueError(f"the direction of metric {name!r} is unknown (is higher or lower better?); {_hint(name)}")


def names(kind: str | None = None, family: str | None = None) -> tuple[str, ...]:
    """Registered names, optionally of one ``kind`` and / or ``family``."""
    return tuple(n for n, d in _ENTRIES.items() if (kind is None or d.kind == kind)
                 and (family is None or d.family == family))


def view(selected: Iterable[str]) -> Mapping[str, bool]:
    """A read-only {name: higher_is_better} of the registered names ``selected`` (a family's table)."""
    return MappingProxyType({n: _BOOLS[n] for n in selected})


# ------------------------------------------------------------------------------------------ the registry
def _declare(family: str, kind: str, rows) -> None:
    for name, higher, quantity in rows:
        register(name, higher, quantity=quantity, family=family, kind=kind)


_declare("evaluate", METRIC, [
    ("insertion_auc", True, "area under the pixel-insertion curve"),
    ("deletion_auc", False, "area under the pixel-deletion curve"),
    ("structure_insertion_auc", True, "area under the structure-wise insertion (keep) curve"),
    ("structure_deletion_auc", False, "area under the structure-wise deletion (remove) curve"),
    ("expected_score", True, "E(Y | S_x): mean target score on explanation-masked images"),
    ("masked_accuracy", True, "share of masked images still classified as the target"),
    ("average_drop", False, "Average Drop % (Grad-CAM++)"),
    ("increase_in_confidence", True, "% Increase in Confidence (Grad-CAM++)"),
    ("win_percentage", True, "Win % of map A over map B (lower relative drop)"),
    ("pointing_game", True, "pointing game hit rate (Zhang et al. 2016)"),
    ("energy_pointing_game", True, "share of positive map energy inside the mask"),
    ("iou", True, "IoU of the thresholded map with the ground-truth mask (localisation)"),
    ("correlation", True, "Pearson correlation of the map with the 0/1 mask"),
    ("pixel_accuracy", True, "share of pixels where the thresholded map equals the mask"),
    ("human_preference", True, "mean preference in [-2, 2] of a pairwise human study"),
])
_declare("uncertainty.metrics", METRIC, [
    ("AUROC", True, "area under the ROC curve (uncertainty flags the positives)"),
    ("FPR95", False, "false-positive rate at 95 % true-positive rate"),
    ("AUAC", True, "area under the accuracy-versus-retained-fraction curve"),
    ("AUFC", True, "area under the macro-F1-versus-retained-fraction curve"),
    ("AURC", False, "area under the risk-coverage curve"),
    ("ECE", False, "expected calibration error"),
    ("MCE", False, "maximum calibration error"),
    ("adaptive ECE", False, "equal-mass expected calibration error"),
    ("Brier", False, "multiclass Brier score"),
    ("NLL", False, "mean negative log-likelihood of the true labels (nats)"),
    ("accuracy", True, "top-1 accuracy"),
    # the introspection tables' lower-case spelling of the same metrics
    ("auroc", True, "area under the ROC curve (OOD = positive)"),
    ("fpr95", False, "false-positive rate at 95 % true-positive rate"),
    ("ece", False, "expected calibration error"),
])
_declare("uncertainty.attribution", METRIC, [
    ("MURR", True, "maximum uncertainty reduction rate of the blurring test"),
    ("AUC-URR", False, "area under the remaining-uncertainty curve of the blurring test"),
    ("IoU", True, "IoU of the binarised attribution map with the anomaly patch"),
    ("ADA", True, "anomaly detection accuracy (share of anomalies found)"),
    ("ACC", True, "accuracy (%) of the Bayesian prediction"),
])
_declare("uncertainty.voice", METRIC, [
    ("explanation_overlap", False,
     "VOICE: IoU of the thresholded explanation and its uncertainty map (higher = a less trustworthy explanation)"),
    ("snr", False, "VOICE: mean / std of the uncertainty map (higher = a less trustworthy prediction)"),
])
_declare("intervene", ATTACK, [
    ("AUC", True, "membership-inference AUC (higher = more leakage)"),
    ("tpr_at_fpr", True, "membership-inference TPR at a low FPR (higher = more leakage)"),
    ("TPR@1%FPR", True, "membership-inference TPR at 1 % FPR (higher = more leakage)"),
    ("TPR@0.1%FPR", True, "membership-inference TPR at 0.1 % FPR (higher = more leakage)"),
    ("advantage", True, "membership advantage max(TPR - FPR) (higher = more leakage)"),
    ("success_rate", True, "share of adversarial examples that change the prediction"),
])
# uncertainty scores: True = the function returns a confidence or trust (the registry negates it)
_declare("uncertainty.scores", SCORE, [
    ("msp", True, "max softmax probability: a confidence"),
    ("entropy", False, "softmax entropy (nats): an uncertainty"),
    ("margin", True, "p(1st) - p(2nd): a confidence"),
    ("nll", False, "-log p(predicted label): an uncertainty"),
    ("max_logit", True, "the largest logit: a confidence"),
    ("energy", False, "-T logsumexp(z / T): an uncertainty"),
    ("odin", True, "max softmax(f(x~) / T) of the perturbed input: a confidence"),
    ("mahalanobis", False, "min_k squared Mahalanobis distance: an uncertainty"),
    ("mc_dropout", False, "entropy of the mean MC-dropout prediction: an uncertainty"),
    ("mc_dropout_mi", False, "mutual information of MC-dropout samples: an uncertainty"),
    ("ensemble", False, "entropy of the mean ensemble prediction: an uncertainty"),
    ("ensemble_mi", False, "mutual information between ensemble members: an uncertainty"),
    ("gradnorm", True, "GradNorm, L1 norm of the last-layer gradient of KL(u || softmax): a confidence"),
    ("purview", False, "Purview, mean squared per-layer gradient norm: an uncertainty"),
    ("gradtrust", True, ("GradTrust as released (max/mean class-row variance): a trust score, "
                        "higher = more trustworthy; uncertainty('gradtrust') is its negative")),
    ("gradtrust_topk", True, ("top-k counterfactual GradTrust: a trust score, higher = more trustworthy; "
                             "uncertainty('gradtrust_topk') is its negative")),
])
