"""The one direction registry (_core.directions): every metric and score name the package ranks, tabulates
or scores has one declared direction, unknown names are errors (never guessed), and no name means two
directions."""
import math

import pytest
import torch
from conftest import forget_direction

import inferml_course as ic
from inferml_course import evaluate as ev
from inferml_course._core import directions as D
from inferml_course.uncertainty import metrics as M
from inferml_course.uncertainty import scores as S
from inferml_course.uncertainty import voice as ve
from inferml_course.uncertainty.attribution import evaluation as UA


def test_every_metric_of_the_package_has_a_registered_direction():
    from inferml_course.evaluate.localization import LOCALIZATION_METRICS
    from inferml_course.evaluate.masking import MASKING_METRICS
    from inferml_course.uncertainty.calibration import calibration_summary

    named = [*ev.DIRECTIONS, *M.DIRECTIONS, *UA.DIRECTIONS, *MASKING_METRICS, *LOCALIZATION_METRICS,
             "insertion_auc", "deletion_auc", "structure_insertion_auc", "structure_deletion_auc",
             "human_preference", "explanation_overlap", "snr", "AUC", "TPR@1%FPR", "TPR@0.1%FPR", "advantage",
             "auroc", "fpr95", "accuracy", "ece"]
    probs = torch.softmax(torch.randn(20, 3, generator=torch.Generator().manual_seed(0)), 1)
    named += list(calibration_summary(probs, torch.arange(20) % 3))
    for name in named:
        assert isinstance(D.higher_is_better(name), bool), name
        assert name in D.REGISTRY and D.REGISTRY[name].quantity, name
    # the summaries the ranking merges (their keys are the metric names the lesson ranks)
    assert set(ev.DIRECTIONS) >= {"insertion_auc", "deletion_auc", "average_drop", "iou", "pointing_game"}


def test_known_directions():
    higher = ["AUROC", "AUAC", "AUFC", "accuracy", "insertion_auc", "structure_insertion_auc", "iou", "IoU", "MURR",
              "ADA", "ACC", "pointing_game", "expected_score", "increase_in_confidence", "human_preference"]
    lower = ["FPR95", "AURC", "ECE", "MCE", "adaptive ECE", "Brier", "NLL", "deletion_auc", "structure_deletion_auc",
             "average_drop", "AUC-URR", "explanation_overlap", "snr"]
    assert all(D.higher_is_better(n) for n in higher)
    assert not any(D.higher_is_better(n) for n in lower)
    assert D.DIRECTIONS["AUROC"] is True and D.describe(False) == "lower is better" and D.arrow(True) == "↑"


def test_family_views_are_read_only_views_of_the_registry():
    for view in (ev.DIRECTIONS, M.DIRECTIONS, UA.DIRECTIONS):
        for name, higher in view.items():
            assert D.DIRECTIONS[name] is higher
        with pytest.raises(TypeError):
            view["mystery"] = True
    with pytest.raises(TypeError):
        D.DIRECTIONS["mystery"] = True


def test_unknown_name_raises_and_says_how_to_pass_it():
    with pytest.raises(ValueError, match=r"'mystery metric'.*directions=\{'mystery metric': True\}"):
        D.higher_is_better("mystery metric")
    # no "last word of the name" rule: a derived name is unknown until it is passed or registered
    with pytest.raises(ValueError, match=r"'ring iou'.*directions=\{'ring iou': True\}.*'iou'"):
        D.higher_is_better("ring iou")
    assert D.higher_is_better("ring iou", directions={"ring iou": False}) is False
    assert D.higher_is_better("ring iou", base={"ring iou": "iou"}) is True
    assert D.higher_is_better("ring iou", base={"ring iou": "deletion_auc"}) is False
    with pytest.raises(ValueError, match="base"):
        D.higher_is_better("ring iou", base={"ring iou": "nothing registered"})
    with pytest.raises(TypeError, match="True"):
        D.higher_is_better("x", directions={"x": "higher"})
    for table in (lambda: ev.rank_methods({"ring iou": {"a": 1.0, "b": 0.0}}),
                  lambda: ev.format_ranking({"ring iou": {"a": 1.0}})):
        with pytest.raises(ValueError, match="direction"):
            table()


def test_register_refuses_a_second_direction():
    try:
        assert D.register("ring iou", base="iou") is True
        assert D.register("ring iou", base="iou") is True  # the same again: a no-op
        assert D.register("ring iou", True) is True
        with pytest.raises(ValueError, match="cannot also mean"):
            D.register("ring iou", False)
        with pytest.raises(ValueError, match="cannot also mean"):
            D.register("iou", False)  # VOICE's overlap could not have kept the name
        with pytest.raises(ValueError, match="cannot also mean"):
            ev.merge_summaries({"a": {"deletion_auc": 0.2}}, prefix={"deletion_auc": "ring iou"})
        with pytest.raises(TypeError):
            D.register("x", True, base="iou")
        assert ev.rank_methods({"ring iou": {"a": 0.1, "b": 0.9}})["ring iou"] == {"a": 2.0, "b": 1.0}
    finally:
        forget_direction("ring iou")
    assert "ring iou" not in D.DIRECTIONS


def test_merge_summaries_registers_the_renamed_metrics():
    try:
        merged = ev.merge_summaries({"a": {"iou": 0.5, "average_drop": 10.0}, "b": {"iou": 0.7, "average_drop": 5.0}},
                                    prefix={"iou": "hull iou", "average_drop": "hull average_drop"})
        assert D.REGISTRY["hull iou"].higher_is_better is True
        assert D.REGISTRY["hull average_drop"].higher_is_better is False
        ranks = ev.rank_methods(merged)
        assert ranks["hull iou"] == {"a": 2.0, "b": 1.0} and ranks["hull average_drop"] == {"a": 2.0, "b": 1.0}
        assert "hull iou ↑" in ev.format_ranking(merged) and "hull average_drop ↓" in ev.format_ranking(merged)
    finally:
        forget_direction("hull iou")
        forget_direction("hull average_drop")


def test_voice_overlap_has_its_own_name():
    """VOICE's IoU (higher = worse) no longer shares the name of evaluate.iou (higher = better)."""
    assert D.higher_is_better("iou") is True and D.higher_is_better("explanation_overlap") is False
    assert "explanation_overlap" in dir(ve) and "iou" not in dir(ve)
    assert "iou" not in ve.maps.__all__
    with pytest.raises(AttributeError):
        ve.iou  # noqa: B018
    assert not hasattr(ve.maps, "iou")
    e = torch.zeros(1, 4, 4)
    e[0, :2] = 1.0
    assert float(ve.explanation_overlap(e, e)) == pytest.approx(1.0)
    assert float(ve.explanation_overlap(e, 1 - e)) < 1e-6  # disjoint: no overlap


def test_voice_stats_key_is_renamed():
    from _explain_models import images, small_cnn

    result = ve.voice(small_cnn(), images(2))
    stats = ve.voice_stats(result)
    assert set(stats) == {"explanation_overlap", "snr"}
    assert all(name in D.DIRECTIONS for name in stats)


def test_registry_scores_read_their_direction_from_the_registry():
    for name, spec in S.SCORES.items():
        entry = D.REGISTRY[name]
        assert entry.kind == D.SCORE
        assert spec.higher_is_confident is entry.higher_is_better
        assert spec.sign == (-1 if entry.higher_is_better else 1)
    assert D.REGISTRY["gradtrust"].higher_is_better is True  # a trust score: higher = more trustworthy
    assert "trust" in D.REGISTRY["gradtrust"].quantity and "negative" in D.REGISTRY["gradtrust"].quantity
    assert D.REGISTRY["entropy"].higher_is_better is False


def test_registry_score_directions_agree_with_the_auroc_orientation():
    """An uncertainty (higher = more uncertain) flags wrong predictions with AUROC > 0.5; the raw output of a
    confidence score does so only when negated, which is what the registry's direction says."""
    g = torch.Generator().manual_seed(0)
    n, k = 400, 5
    labels = torch.randint(0, k, (n,), generator=g)
    signal = torch.randn(n, generator=g).abs() * 4
    logits = torch.randn(n, k, generator=g)
    logits[torch.arange(n), labels] += signal
    correct = logits.argmax(1) == labels
    raw = S.logit_scores(logits)
    for name, value in raw.items():
        if name not in S.SCORES:
            continue
        spec = S.get_score(name)
        as_uncertainty = spec.sign * value
        assert M.misprediction_auroc(as_uncertainty, correct) > 0.6, name
        raw_auroc = M.misprediction_auroc(value, correct)
        # higher_is_confident: the raw output is *lower* on the wrong predictions
        assert (raw_auroc < 0.5) is spec.higher_is_confident, name
    assert not math.isnan(M.auroc(torch.tensor([0.0, 1.0]), torch.tensor([False, True])))


def test_uncertainty_of_a_trust_score_is_its_negative():
    from _explain_models import images, small_cnn

    from inferml_course.uncertainty import trust

    model, x = small_cnn(), images(3)
    assert torch.allclose(S.uncertainty("gradtrust", model, x), -trust.gradtrust(model, x))
    assert "minus" in S.uncertainty.__doc__ or "*minus*" in S.uncertainty.__doc__


def test_tables_and_rankings_read_the_registry():
    text = ic.format_table({"a": {"ECE": 0.1}, "b": {"ECE": 0.2}}, marks=True)
    assert "ECE lower is better" in text and "0.100*" in text
    text = ic.format_table({"a": {"AUC-URR 2%": 0.4, "ADA pointing": 0.1},
                            "b": {"AUC-URR 2%": 0.3, "ADA pointing": 0.2}}, marks=True)
    assert "0.300*" in text and "0.200*" in text and "ADA higher is better" in text
    assert "deletion_auc ↓" in ev.format_ranking({"deletion_auc": {"a": 0.1, "b": 0.2}})


def test_result_tables_and_membership_reports_read_the_registry():
    from inferml_course.intervene.membership import membership_report

    assert ev.GAMES == {"insertion": "higher is better", "deletion": "lower is better"}
    assert ev.MASKING_METRICS["average_drop"] == "lower is better"
    assert ev.LOCALIZATION_METRICS["iou"] == "higher is better"
    scores = torch.tensor([0.9, 0.8, 0.3, 0.1, 0.5, 0.2])
    members = torch.tensor([True, True, False, False, True, False])
    try:
        report = membership_report(scores, members, fprs=(0.01, 0.25))
        assert all(name in D.DIRECTIONS for name in report)  # TPR@25%FPR is registered as tpr_at_fpr
        assert D.REGISTRY["TPR@25%FPR"].kind == D.ATTACK and D.higher_is_better("TPR@25%FPR")
    finally:
        forget_direction("TPR@25%FPR")
