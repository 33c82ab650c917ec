"""Hypothesis properties of the metrics and scores on tied, constant and extreme inputs (issue 15).

Each property is a statement the code could violate: a constant score is exactly chance (AUROC 1/2, a flat
accuracy curve at the accuracy, a risk equal to the error rate, FPR 1 at any TPR), a single class present is a
clear error, equal logits are maximal uncertainty, extreme logits stay finite and in range, constant maps
normalise to zeros and rank in raster order (so the games treat them like the raster-order map), and a map
with one non-zero pixel moves that pixel first, points at it and binarises to it.

Deterministic: the examples come from the ``ci`` Hypothesis profile of ``tests/conftest.py``
(``derandomize=True``), which a plain ``pytest`` loads.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inferml_course import evaluate as ev
from inferml_course import explain
from inferml_course.uncertainty import calibration, metrics, scores

from _evaluate_models import RegionModel

FAST = settings(max_examples=40)
SLOW = settings(max_examples=8)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
#: map values the display scaling does not treat as zero (its eps is 1e-12)
visible = st.one_of(st.just(0.0), st.floats(1e-6, 1e6), st.floats(-1e6, -1e-6))


@st.composite
def binary_labels(draw, min_size=2, max_size=40, both=True):
    """0/1 labels; with ``both`` at least one of each class."""
    labels = draw(st.lists(st.integers(0, 1), min_size=min_size, max_size=max_size))
    if both and len(set(labels)) < 2:
        labels[draw(st.integers(0, len(labels) - 1))] = 1 - labels[0]
    return torch.tensor(labels)


@st.composite
def tied_scores(draw, n):
    """n scores drawn from at most three values: many ties."""
    values = draw(st.lists(finite, min_size=1, max_size=3, unique=True))
    return torch.tensor([values[draw(st.integers(0, len(values) - 1))] for _ in range(n)], dtype=torch.float64)


# -------------------------------------------------------------------------------------- detection metrics

@FAST
@given(labels=binary_labels(), value=finite)
def test_a_constant_score_has_auroc_one_half(labels, value):
    assert metrics.auroc(torch.full((len(labels),), value, dtype=torch.float64), labels) == 0.5


@FAST
@given(data=st.data(), labels=binary_labels())
def test_auroc_of_tied_scores_and_of_their_negation_add_up_to_one(data, labels):
    s = data.draw(tied_scores(len(labels)))
    assert metrics.auroc(s, labels) + metrics.auroc(-s, labels) == pytest.approx(1.0, abs=1e-12)
    # ties count 1/2 under any strictly increasing transform too
    assert metrics.auroc(torch.atan(s / 1e5), labels) == pytest.approx(metrics.auroc(s, labels), abs=1e-12)


@FAST
@given(n=st.integers(1, 30), positive=st.booleans(), data=st.data())
def test_a_single_class_is_a_clear_error(n, positive, data):
    s = data.draw(tied_scores(n))
    labels = torch.full((n,), int(positive))
    with pytest.raises(ValueError, match="labels must contain both classes"):
        metrics.auroc(s, labels)
    with pytest.raises(ValueError, match="both classes"):
        metrics.misprediction_auroc(s, labels.bool())


@FAST
@given(n_id=st.integers(1, 20), n_ood=st.integers(1, 20), value=finite,
       tpr=st.floats(0.01, 1.0), positive=st.sampled_from(["ood", "id"]), rule=st.sampled_from(["first_ge", "nearest"]))
def test_all_tied_id_and_ood_scores_flag_everything(n_id, n_ood, value, tpr, positive, rule):
    """One threshold separates nothing: the only ROC point past (0, 0) is (1, 1), so FPR = 1 at any TPR
    (for "nearest" whenever the target TPR is closer to 1 than to 0)."""
    fpr = metrics.fpr_at_tpr(torch.full((n_id,), value), torch.full((n_ood,), value), tpr, positive, rule)
    assert fpr == (1.0 if rule == "first_ge" or tpr > 0.5 else 0.0)


# ------------------------------------------------------------------------------- trust curves, selective risk

@FAST
@given(correct=binary_labels(min_size=1, both=False), value=finite, n_points=st.integers(1, 50),
       kind=st.sampled_from(["uncertainty", "trust"]))
def test_a_constant_score_is_chance_on_every_curve(correct, value, n_points, kind):
    s = torch.full((len(correct),), value, dtype=torch.float64)
    accuracy = correct.double().mean().item()
    _, curve = metrics.accuracy_curve(s, correct, kind, n_points)
    assert torch.allclose(curve, torch.full_like(curve, accuracy), atol=1e-12)
    assert metrics.auac(s, correct, kind, n_points) == pytest.approx(accuracy, abs=1e-12)
    _, risk = metrics.risk_coverage_curve(s, correct, kind)
    assert torch.allclose(risk, torch.full_like(risk, 1 - accuracy), atol=1e-12)
    assert metrics.aurc(s, correct, kind) == pytest.approx(1 - accuracy, abs=1e-12)


@FAST
@given(correct=binary_labels(min_size=2, max_size=30))
def test_the_oracle_never_loses_to_a_constant_score(correct):
    """The perfect ranking (trust = correctness) is at least as good as chance on AUAC and AURC."""
    reference = metrics.auac_reference(correct)
    assert reference["oracle"] >= reference["random"] - 1e-12
    assert metrics.aurc(correct.double(), correct, "trust") <= metrics.aurc(torch.zeros(len(correct)), correct) + 1e-12


# -------------------------------------------------------------------------------------------- calibration

@st.composite
def probability_vector(draw, k_min=2, k_max=6):
    k = draw(st.integers(k_min, k_max))
    w = torch.tensor(draw(st.lists(st.floats(1e-3, 1.0), min_size=k, max_size=k)), dtype=torch.float64)
    return w / w.sum()


@FAST
@given(p=probability_vector(), data=st.data(), n_bins=st.integers(1, 20))
def test_constant_predictions_have_ece_equal_to_the_confidence_gap(p, data, n_bins):
    """Every row the same distribution: one bin, ECE = MCE = |accuracy - confidence|."""
    n = data.draw(st.integers(1, 30))
    labels = torch.tensor(data.draw(st.lists(st.integers(0, len(p) - 1), min_size=n, max_size=n)))
    probs = p.expand(n, -1).clone()
    gap = abs((labels == probs[0].argmax()).double().mean().item() - probs[0].max().item())
    assert calibration.expected_calibration_error(probs, labels, n_bins) == pytest.approx(gap, abs=1e-9)
    assert calibration.maximum_calibration_error(probs, labels, n_bins) == pytest.approx(gap, abs=1e-9)


@FAST
@given(labels=st.lists(st.integers(0, 4), min_size=1, max_size=20))
def test_one_hot_correct_predictions_are_perfect_and_one_hot_wrong_ones_extreme(labels):
    y = torch.tensor(labels)
    right = torch.nn.functional.one_hot(y, 5).double()
    assert calibration.expected_calibration_error(right, y) == 0.0
    assert calibration.brier_score(right, y) == 0.0
    assert calibration.mean_nll(right, y) == 0.0
    wrong = torch.nn.functional.one_hot((y + 1) % 5, 5).double()
    assert calibration.expected_calibration_error(wrong, y) == 1.0
    assert calibration.brier_score(wrong, y) == 2.0
    nll = calibration.mean_nll(wrong, y)
    assert math.isfinite(nll) and nll > 700  # -log of the smallest positive float64, not inf


# --------------------------------------------------------------------------------------- scores from logits

@FAST
@given(n=st.integers(1, 8), k=st.integers(2, 10), value=finite)
def test_equal_logits_are_maximal_uncertainty(n, k, value):
    out = scores.logit_scores(torch.full((n, k), value, dtype=torch.float64))
    assert torch.allclose(out["entropy"], torch.full((n,), math.log(k), dtype=torch.float64))
    assert torch.allclose(out["msp"], torch.full((n,), 1 / k, dtype=torch.float64))
    assert torch.equal(out["margin"], torch.zeros(n, dtype=torch.float64))


@FAST
@given(logits=st.lists(st.lists(st.floats(-1e4, 1e4), min_size=3, max_size=3), min_size=1, max_size=6))
def test_extreme_logits_give_finite_scores_in_their_ranges(logits):
    z = torch.tensor(logits, dtype=torch.float64)
    out = scores.logit_scores(z)
    for name, value in out.items():
        assert torch.isfinite(value).all(), name
    assert ((out["entropy"] >= -1e-12) & (out["entropy"] <= math.log(3) + 1e-12)).all()
    assert ((out["msp"] >= 1 / 3 - 1e-12) & (out["msp"] <= 1)).all()
    assert ((out["margin"] >= 0) & (out["margin"] <= 1)).all()
    assert torch.allclose(out["nll"], -torch.log(out["msp"]), atol=1e-9)


# --------------------------------------------------------------------------------------------------- maps

SIDE = 6
maps_shape = st.tuples(st.integers(1, 3), st.integers(2, SIDE), st.integers(2, SIDE))


@FAST
@given(shape=maps_shape, value=visible)
def test_constant_maps_normalise_to_zeros_and_rank_in_raster_order(shape, value):
    maps = torch.full(shape, value, dtype=torch.float64)
    assert torch.equal(explain.normalize_maps(maps, "minmax"), torch.zeros(shape))
    expected = 0.0 if value == 0 else math.copysign(1.0, value)
    assert torch.equal(explain.normalize_maps(maps, "absmax"), torch.full(shape, expected))
    assert torch.equal(ev.pixel_ranks(maps), torch.arange(shape[1] * shape[2]).expand(shape[0], -1))


@FAST
@given(shape=maps_shape, data=st.data(), value=st.floats(1e-6, 1e6))
def test_a_map_with_one_non_zero_pixel(shape, data, value):
    n, h, w = shape
    r, c = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
    maps = torch.zeros(shape, dtype=torch.float64)
    maps[:, r, c] = value
    ranks = ev.pixel_ranks(maps)
    assert (ranks[:, r * w + c] == 0).all()  # moved first
    assert torch.equal(explain.normalize_maps(maps, "minmax"), (maps > 0).float())
    threshold = data.draw(st.floats(1e-6, 1.0))
    assert torch.equal(ev.binarize(maps, threshold), maps > 0)
    inside = torch.zeros(shape, dtype=torch.bool)
    inside[:, r, c] = True
    assert (ev.pointing_game(maps, inside) == 1).all()
    assert (ev.energy_pointing_game(maps, inside) == 1).all()
    assert (ev.pointing_game(maps, ~inside) == 0).all()
    assert torch.allclose(ev.iou(maps, inside, threshold), torch.ones(n, dtype=torch.float64))


@FAST
@given(shape=maps_shape, value=finite, data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_normalised_maps_stay_in_range_for_extreme_values(shape, value, data, dtype):
    """Values beyond float32's range (float64 maps) and spans that overflow it (float32 maps from -3e38 to
    3e38) still scale into the range, finite (the scaling runs in float64)."""
    extreme = data.draw(st.floats(1e100, 1e300) if dtype == torch.float64 else st.floats(1e30, 3e38))
    maps = torch.full(shape, value, dtype=dtype)
    maps[:, 0, 0] = extreme
    maps[:, -1, -1] = -extreme
    for mode, low in (("minmax", 0.0), ("absmax", -1.0), ("percentile", -1.0)):
        out = explain.normalize_maps(maps, mode)
        assert torch.isfinite(out).all() and out.min() >= low and out.max() <= 1, mode


# --------------------------------------------------------------------------------------------- the games

def _region_model(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return RegionModel(torch.rand(h, w, generator=g, dtype=torch.float64)).eval(), \
        torch.rand(2, 3, h, w, generator=g, dtype=torch.float64)


@SLOW
@given(h=st.integers(2, 5), w=st.integers(2, 5), value=finite, seed=st.integers(0, 3), data=st.data())
def test_a_constant_map_plays_the_games_in_raster_order(h, w, value, seed, data):
    """Ties are broken in raster order, so a constant map and the strictly decreasing raster map give the same
    insertion and deletion curves, with any number of steps."""
    model, x = _region_model(h, w, seed)
    steps = data.draw(st.integers(1, h * w))
    constant = torch.full((2, h, w), value, dtype=torch.float64)
    raster = -torch.arange(h * w, dtype=torch.float64).view(1, h, w).expand(2, -1, -1)
    a = ev.insertion_deletion(model, x, constant, steps=steps, substrate=0.5, output="logit")
    b = ev.insertion_deletion(model, x, raster, steps=steps, substrate=0.5, output="logit")
    assert torch.equal(a.insertion["map"], b.insertion["map"]) and torch.equal(a.deletion["map"], b.deletion["map"])
    assert a.insertion["map"].shape == (2, steps + 1)


@SLOW
@given(h=st.integers(2, 5), w=st.integers(2, 5), seed=st.integers(0, 3), data=st.data())
def test_one_non_zero_pixel_is_what_the_first_game_step_moves(h, w, seed, data):
    """With steps = H W each step moves one pixel: the first deletion step removes exactly the non-zero pixel,
    which for the additive RegionModel changes logit 0 by its weight times (substrate - x) summed over channels."""
    model, x = _region_model(h, w, seed)
    r, c = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
    maps = torch.zeros(2, h, w, dtype=torch.float64)
    maps[:, r, c] = 1.0
    curve = ev.deletion_curve(model, x, maps, target=0, steps=h * w, substrate=0.5, output="logit")
    expected = model.w[r, c] * (0.5 - x[:, :, r, c]).sum(1)
    assert torch.allclose(curve[:, 1] - curve[:, 0], expected, atol=1e-9)


@SLOW
@given(h=st.integers(2, 5), w=st.integers(2, 5), value=st.floats(1e-3, 1e3), seed=st.integers(0, 3))
def test_heatmap_masking_with_constant_maps_keeps_or_removes_everything(h, w, value, seed):
    """scaling="max": a positive constant map is the all-ones mask (the masked images are the images, the
    scores do not move); the zero map is the all-zeros mask (every masked image is the substrate)."""
    model, x = _region_model(h, w, seed)
    full = ev.heatmap_masking(model, x, torch.full((2, h, w), value, dtype=torch.float64), target=0,
                              substrate=0.5, output="logit")
    assert torch.allclose(full.masked["map"], full.full, atol=1e-12)
    zero = ev.heatmap_masking(model, x, torch.zeros(2, h, w, dtype=torch.float64), target=0, substrate=0.5,
                              output="logit")
    assert torch.allclose(zero.masked["map"], torch.zeros(2, dtype=torch.float64), atol=1e-12)  # grey: z_0 = 0


@FAST
@given(pixels=st.integers(1, 500), data=st.data())
def test_step_counts_go_from_nothing_to_everything(pixels, data):
    steps = data.draw(st.integers(1, pixels))
    counts = ev.step_counts(pixels, steps)
    assert counts.shape == (steps + 1,) and counts[0] == 0 and counts[-1] == pixels
    assert (counts.diff() >= 1).all()  # at most as many steps as pixels: every step moves a pixel


@FAST
@given(n=st.integers(1, 4), points=st.integers(2, 20), value=finite)
def test_the_auc_of_a_constant_curve_is_the_constant(n, points, value):
    assert torch.allclose(ev.auc(torch.full((n, points), value, dtype=torch.float64)),
                          torch.full((n,), value, dtype=torch.float64), rtol=1e-12, atol=1e-6)
