"""Intervenability at inference (lesson 09): what happens when people step in.

==============  ======================================================================================
module          contents
==============  ======================================================================================
``membership``  membership inference: shadow-model attack, loss / confidence threshold attack,
                AUC and TPR at low FPR, tiny targets that overfit or not (privacy glass)
``adversarial`` FGSM and PGD (L-infinity, pixel space), input gradients, robustness curves
``prompting``   a promptable segmenter (random walker) and simulated annotators (prompting glass)
``causal``      do-interventions on the watermark model, the do-calculus readings, SHAPE with RISE's
                masks (causal and interpretability glasses; the insertion / deletion games that
                score them are in ``inferml_course.evaluate``)
``plots``       the lesson's figures
``widgets``     live teaching: place prompts, move or recolour the watermark
==============  ======================================================================================

Submodules load lazily: ``from inferml_course.intervene import adversarial`` or
``intervene.fgsm(...)`` for the most used functions.
"""
from __future__ import annotations

from .._core.lazy import lazy_package

_SUBMODULES = ("membership", "adversarial", "prompting", "causal", "plots", "widgets")
_SHORTCUTS = {
    "fgsm": "adversarial", "pgd": "adversarial", "robustness_curve": "adversarial", "input_gradient": "adversarial",
    "success_rate": "adversarial",
    "membership_experiment": "membership", "membership_report": "membership", "tpr_at_fpr": "membership",
    "loss_scores": "membership", "ShadowAttack": "membership", "ThresholdAttack": "membership",
    "segment": "prompting", "simulate_annotator": "prompting", "prompt_curves": "prompting",
    "set_watermark": "causal", "intervention_probs": "causal", "do_table": "causal", "causal_summary": "causal",
    "shape": "causal", "rise_and_shape": "causal",
}

__all__ = [*_SUBMODULES, *_SHORTCUTS]


__getattr__, __dir__ = lazy_package(__name__, globals(), _SUBMODULES, _SHORTCUTS)

