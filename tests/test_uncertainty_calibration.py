"""Calibration: ECE/MCE against torchmetrics (its bin rule), hand examples of the three edge rules,
adaptive ECE, Brier, temperature scaling against a brute-force grid, and bad input."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from inferml_course.uncertainty import calibration as cal

from conftest import require

torch.set_num_threads(1)


def random_probs(n=500, k=6, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g) * scale
    labels = torch.randint(0, k, (n,), generator=g)
    # make the labels agree with the prediction most of the time so that accuracy is not trivial
    agree = torch.rand(n, generator=g) < 0.7
    labels = torch.where(agree, logits.argmax(1), labels)
    return torch.softmax(logits, 1), labels


# ------------------------------------------------------------------------------------------ oracle
@pytest.mark.parametrize("n_bins", [15, 7])
@pytest.mark.parametrize("seed", [0, 1])
def test_ece_and_mce_match_torchmetrics(n_bins, seed):
    tm = require("torchmetrics.functional.classification")
    probs, labels = random_probs(seed=seed)
    probs[:20] = torch.nn.functional.one_hot(labels[:20], probs.shape[1]).float()  # confidences of exactly 1.0
    k = probs.shape[1]
    for norm, ours in (("l1", cal.expected_calibration_error), ("max", cal.maximum_calibration_error)):
        expected = tm.multiclass_calibration_error(probs, labels, num_classes=k, n_bins=n_bins, norm=norm)
        assert ours(probs, labels, n_bins, rule="torchmetrics") == pytest.approx(float(expected), abs=1e-5), norm


def test_three_bin_rules_by_hand():
    # confidences 0.5, 0.6, 0.95, 1.0 (correct, correct, correct, wrong), 2 bins
    probs = torch.tensor([[0.5, 0.5], [0.6, 0.4], [0.95, 0.05], [1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1])
    assert cal.ece(probs, labels, 2, "torchmetrics") == pytest.approx(0.4875)
    assert cal.ece(probs, labels, 2, "right_closed") == pytest.approx(0.2625)
    assert cal.ece(probs, labels, 2, "left_closed") == pytest.approx(0.0125)


def test_right_closed_rule_drops_zero_confidence_but_counts_it():
    bins = cal.reliability_bins(torch.tensor([0.0, 0.3, 0.8]), torch.tensor([0, 1, 1]), 2, "right_closed")
    assert bins["count"].tolist() == [1, 1] and bins["n"] == 3


def test_torchmetrics_rule_has_an_extra_bin_for_one():
    bins = cal.reliability_bins(torch.tensor([1.0, 0.2]), torch.tensor([1, 0]), 4, "torchmetrics")
    assert bins["count"].tolist() == [1, 0, 0, 0, 1]
    assert cal.reliability_bins(torch.tensor([1.0]), torch.tensor([1]), 4)["count"].tolist() == [0, 0, 0, 1]


def test_perfectly_calibrated_bins_have_zero_ece():
    # in each bin, accuracy equals the mean confidence
    probs = torch.tensor([[0.75, 0.25]] * 4 + [[0.55, 0.45]] * 20, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1] + [0] * 11 + [1] * 9)
    assert cal.ece(probs, labels, 10) == pytest.approx(0.0, abs=1e-12)
    assert cal.mce(probs, labels, 10) == pytest.approx(0.0, abs=1e-12)


def test_adaptive_ece_by_hand():
    probs = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1], [0.95, 0.05]], dtype=torch.float64)
    labels = torch.tensor([1, 0, 0, 1, 0])
    # groups (sorted): [0.6, 0.7, 0.8] and [0.9, 0.95] with 2 bins (the first gets the extra sample)
    expected = (3 * abs(2 / 3 - 0.7) + 2 * abs(0.5 - 0.925)) / 5
    assert cal.adaptive_ece(probs, labels, 2) == pytest.approx(expected)


def test_brier_and_nll_by_hand():
    probs = torch.tensor([[0.8, 0.2], [0.3, 0.7]], dtype=torch.float64)
    labels = torch.tensor([0, 0])
    assert cal.brier_score(probs, labels) == pytest.approx(((0.2 ** 2 + 0.2 ** 2) + (0.7 ** 2 + 0.7 ** 2)) / 2)
    assert cal.mean_nll(probs, labels) == pytest.approx(-(math.log(0.8) + math.log(0.3)) / 2)
    summary = cal.calibration_summary(probs, labels)
    assert summary["accuracy"] == 0.5 and set(summary) >= {"ECE", "MCE", "Brier", "NLL", "adaptive ECE"}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 8), st.integers(1, 20), st.floats(0.1, 6))
def test_calibration_metric_ranges(seed, k, n_bins, scale):
    probs, labels = random_probs(n=60, k=k, scale=scale, seed=seed)
    e, m = cal.ece(probs, labels, n_bins), cal.mce(probs, labels, n_bins)
    assert 0 <= e <= m + 1e-9 <= 1 + 1e-9
    assert 0 <= cal.adaptive_ece(probs, labels, n_bins) <= 1
    assert 0 <= cal.brier_score(probs, labels) <= 2


# ----------------------------------------------------------------------------------- temperature
def grid_temperature(logits, labels):
    def nll(t):
        return torch.nn.functional.cross_entropy(logits.double() / t, labels).item()

    grid = torch.logspace(-1.5, 1.5, 3001, dtype=torch.float64)
    best = min(grid.tolist(), key=nll)
    fine = torch.linspace(best * 0.995, best * 1.005, 2001, dtype=torch.float64)
    return min(fine.tolist(), key=nll)


@pytest.mark.parametrize("scale", [0.5, 4.0])
def test_temperature_scaling_matches_a_brute_force_grid(scale):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(400, 5, generator=g) * scale
    labels = torch.where(torch.rand(400, generator=g) < 0.6, logits.argmax(1), torch.randint(0, 5, (400,), generator=g))
    t = cal.fit_temperature(logits, labels)
    assert t == pytest.approx(grid_temperature(logits, labels), rel=1e-3)
    # over-confident logits need T > 1, under-confident ones T < 1
    assert (t > 1) == (scale == 4.0)


def test_temperature_scaling_improves_nll_and_keeps_accuracy():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(300, 4, generator=g) * 6
    labels = torch.where(torch.rand(300, generator=g) < 0.5, logits.argmax(1), torch.randint(0, 4, (300,), generator=g))
    t = cal.fit_temperature(logits, labels)
    before, after = torch.softmax(logits, 1), torch.softmax(cal.temperature_scale(logits, t), 1)
    assert cal.mean_nll(after, labels) < cal.mean_nll(before, labels)
    assert torch.equal(before.argmax(1), after.argmax(1))
    model = cal.TemperatureScaled(torch.nn.Identity(), t)
    assert torch.allclose(model(logits), logits / t)


# -------------------------------------------------------------------------------------------- bad input
def test_probabilities_that_do_not_sum_to_one_are_rejected():
    labels = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="sum to 1"):
        cal.ece(torch.tensor([[0.5, 0.4], [0.2, 0.7]]), labels)
    with pytest.raises(ValueError, match="softmax"):
        cal.ece(torch.tensor([[2.0, -1.0], [0.5, 3.0]]), labels)  # logits are not silently softmaxed
    with pytest.raises(ValueError, match="NaN"):
        cal.brier_score(torch.tensor([[float("nan"), 0.5], [0.5, 0.5]]), labels)


def test_other_bad_input():
    probs = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        cal.ece(probs, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        cal.ece(probs, torch.tensor([0, 2]))
    with pytest.raises(TypeError, match="integer"):
        cal.ece(probs, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="rule"):
        cal.ece(probs, torch.tensor([0, 1]), rule="netcal")
    with pytest.raises(ValueError, match="n_bins"):
        cal.ece(probs, torch.tensor([0, 1]), n_bins=0)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        cal.ece(torch.tensor([0.5, 0.5]), torch.tensor([0]))
    with pytest.raises(ValueError, match="look like probabilities"):
        cal.fit_temperature(probs, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="temperature"):
        cal.temperature_scale(torch.randn(2, 3), 0.0)
