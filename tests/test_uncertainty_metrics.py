"""Metrics: AUROC / ROC / FPR95 against scikit-learn, AUAC / AUFC / AURC by hand and by property."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from sklearn.metrics import f1_score, roc_auc_score, roc_curve as sk_roc_curve

from inferml_course.uncertainty import metrics as M

torch.set_num_threads(1)


def sample(n=300, seed=0, ties=True):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, generator=g, dtype=torch.float64)
    if ties:
        s = s.round(decimals=1)
    y = torch.rand(n, generator=g) < 0.3 + 0.2 * torch.sigmoid(s.float())
    return s, y


# ---------------------------------------------------------------------------------------------- AUROC
@pytest.mark.parametrize("seed", range(4))
def test_auroc_matches_sklearn_with_ties(seed):
    s, y = sample(seed=seed)
    assert M.auroc(s, y) == pytest.approx(roc_auc_score(y.numpy(), s.numpy()), abs=1e-12)


def test_auroc_on_unbounded_scores_has_no_sigmoid_saturation():
    # scores far above the range where a float32 sigmoid rounds to 1.0
    s = torch.tensor([1e3, 2e3, 3e3, 4e3], dtype=torch.float32)
    assert M.auroc(s, torch.tensor([0, 0, 1, 1])) == 1.0


def test_roc_curve_matches_sklearn():
    s, y = sample(seed=7)
    fpr, tpr, thr = M.roc_curve(s, y)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(y.numpy(), s.numpy(), drop_intermediate=False)
    assert np.allclose(fpr.numpy(), sk_fpr) and np.allclose(tpr.numpy(), sk_tpr)
    assert np.allclose(thr.numpy()[1:], sk_thr[1:])


def _sk_fpr_at(id_s, ood_s, tpr, positive, rule):
    scores = np.concatenate([id_s, ood_s])
    is_ood = np.r_[np.zeros(len(id_s)), np.ones(len(ood_s))]
    if positive == "ood":
        fpr, tprs, _ = sk_roc_curve(is_ood, scores, drop_intermediate=False)
    else:
        fpr, tprs, _ = sk_roc_curve(1 - is_ood, -scores, drop_intermediate=False)
    i = int(np.argmax(tprs >= tpr)) if rule == "first_ge" else int(np.argmin(np.abs(tprs - tpr)))
    return fpr[i]


@pytest.mark.parametrize("positive", ["ood", "id"])
@pytest.mark.parametrize("rule", ["first_ge", "nearest"])
def test_fpr_at_tpr_both_conventions_match_sklearn(positive, rule):
    rng = np.random.default_rng(0)
    # confidences as in the reference check: ID ~ N(2, 0.5^2), OOD ~ N(0, 1.5^2); uncertainty = -confidence
    id_u, ood_u = -rng.normal(2, 0.5, 2000), -rng.normal(0, 1.5, 2000)
    ours = M.fpr_at_tpr(torch.tensor(id_u), torch.tensor(ood_u), 0.95, positive=positive, rule=rule)
    assert ours == pytest.approx(_sk_fpr_at(id_u, ood_u, 0.95, positive, rule))


def test_the_two_positive_conventions_disagree_on_asymmetric_scores():
    rng = np.random.default_rng(0)
    id_u, ood_u = torch.tensor(-rng.normal(2, 0.5, 2000)), torch.tensor(-rng.normal(0, 1.5, 2000))
    ood_pos = M.fpr_at_tpr(id_u, ood_u, positive="ood")
    id_pos = M.fpr_at_tpr(id_u, ood_u, positive="id")
    # near the reference's 0.856 and 0.214 (different random draws)
    assert 0.8 < ood_pos < 0.9 and 0.15 < id_pos < 0.28


def test_ood_metrics_perfect_and_chance():
    perfect = M.ood_metrics(torch.zeros(50), torch.ones(40))
    assert perfect == {"AUROC": 1.0, "FPR95": 0.0}
    chance = M.ood_metrics(torch.zeros(50), torch.zeros(40))
    assert chance["AUROC"] == 0.5 and chance["FPR95"] == 1.0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["exp", "affine", "cube", "rank"]))
def test_auroc_is_invariant_to_increasing_transforms(seed, transform):
    s, y = sample(n=80, seed=seed)
    if y.all() or not y.any():
        return
    f = {"exp": torch.exp, "affine": lambda v: 3 * v - 7, "cube": lambda v: v ** 3,
         "rank": lambda v: v.argsort().argsort().double() + 0 * v}[transform]
    if transform == "rank":  # ties would be broken by argsort: use a tie-free sample
        s, y = sample(n=80, seed=seed, ties=False)
        if y.all() or not y.any():
            return
    a = M.auroc(s, y)
    assert 0 <= a <= 1
    assert M.auroc(f(s), y) == pytest.approx(a, abs=1e-12)
    assert M.auroc(-s, y) == pytest.approx(1 - a, abs=1e-12)


# ---------------------------------------------------------------------------------------- AUAC / AUFC
def test_auac_of_a_constant_score_is_the_accuracy():
    correct = torch.tensor([1, 1, 0, 1, 0, 1, 1, 1, 0, 1])
    assert M.auac(torch.zeros(10), correct) == pytest.approx(0.7)
    fractions, acc = M.accuracy_curve(torch.zeros(10), correct)
    assert torch.allclose(acc, torch.full_like(acc, 0.7))


def test_auac_by_hand():
    # 4 images, trust order: correct, correct, wrong, correct; 4 percentiles: keep 4, 3, 2, 1 images
    uncertainty = torch.tensor([0.1, 0.2, 0.3, 0.4])
    correct = torch.tensor([1, 1, 0, 1])
    x, acc = M.accuracy_curve(uncertainty, correct, n_points=4)
    assert torch.allclose(x, torch.tensor([0, 0.25, 0.5, 0.75], dtype=torch.float64))
    assert torch.allclose(acc, torch.tensor([3 / 4, 2 / 3, 1, 1], dtype=torch.float64))
    assert M.auac(uncertainty, correct, n_points=4) == pytest.approx((3 / 4 + 2 / 3 + 1 + 1) / 4)
    # the same scores read as trust reverse the order
    assert M.auac(uncertainty, correct, kind="trust", n_points=4) == pytest.approx((3 / 4 + 2 / 3 + 1 / 2 + 1) / 4)


def test_ties_count_as_their_expected_value():
    # the two most trusted images tie, one right and one wrong: keeping one of them gives 1/2 on average
    uncertainty = torch.tensor([0.0, 0.0, 1.0, 1.0])
    correct = torch.tensor([1, 0, 1, 1])
    _, acc = M.accuracy_curve(uncertainty, correct, n_points=4)
    assert torch.allclose(acc, torch.tensor([3 / 4, 2 / 3, 1 / 2, 1 / 2], dtype=torch.float64))


def test_oracle_auac_approaches_its_closed_form():
    n, a = 10_000, 0.6
    correct = torch.arange(n) < int(a * n)
    ref = M.auac_reference(correct, n_points=1000)
    assert ref["random"] == pytest.approx(a)
    assert ref["oracle"] == pytest.approx(a * (1 + math.log(1 / a)), abs=2e-3)


def test_f1_curve_matches_sklearn_on_every_retained_set():
    g = torch.Generator().manual_seed(1)
    n = 200
    labels = torch.randint(0, 4, (n,), generator=g)
    predictions = torch.where(torch.rand(n, generator=g) < 0.7, labels, torch.randint(0, 4, (n,), generator=g))
    u = torch.randn(n, generator=g, dtype=torch.float64)
    x, f1 = M.f1_curve(u, predictions, labels, n_points=100)
    order = u.argsort()
    for i in (0, 13, 50, 99):
        keep = order[: n - 2 * i]  # n_points divides n, so every retained set has an integer size
        expected = f1_score(labels[keep].numpy(), predictions[keep].numpy(), average="macro")
        assert f1[i].item() == pytest.approx(expected, abs=1e-12)
    assert M.aufc(u, predictions, labels) == pytest.approx(f1.mean().item())


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["exp", "affine", "cube"]))
def test_trust_curves_are_invariant_to_increasing_transforms(seed, transform):
    s, y = sample(n=90, seed=seed)
    f = {"exp": torch.exp, "affine": lambda v: 0.5 * v + 2, "cube": lambda v: v ** 3}[transform]
    predictions = torch.arange(90) % 3
    labels = torch.where(y, predictions, (predictions + 1) % 3)
    a, b = M.auac(s, y), M.auac(f(s), y)
    assert 0 <= a <= 1 and a == pytest.approx(b, abs=1e-12)
    assert M.aufc(s, predictions, labels) == pytest.approx(M.aufc(f(s), predictions, labels), abs=1e-12)
    assert M.aurc(s, y) == pytest.approx(M.aurc(f(s), y), abs=1e-12)
    assert M.auac(s, y) == pytest.approx(M.auac(-s, y, kind="trust"), abs=1e-12)
    ref = M.auac_reference(y)
    assert a <= ref["oracle"] + 1e-9  # no ranking beats the oracle (but anti-correlated ones fall below random)


# --------------------------------------------------------------------------------------------- AURC
def test_aurc_matches_torch_uncertainty_docstring_example():
    # probs [[.7,.3],[.6,.4],[.8,.2]], targets [0,1,0]: score = max p, the second prediction is wrong
    uncertainty = -torch.tensor([0.7, 0.6, 0.8])
    correct = torch.tensor([1, 0, 1])
    assert M.aurc(uncertainty, correct, method="trapezoid") == pytest.approx(0.0833, abs=1e-4)
    assert M.aurc(uncertainty, correct) == pytest.approx(0.1111, abs=1e-4)
    coverage, risk = M.risk_coverage_curve(uncertainty, correct)
    assert torch.allclose(risk, torch.tensor([0, 0, 1 / 3], dtype=torch.float64))


def test_aurc_is_one_minus_mean_accuracy_of_prefixes():
    s, y = sample(seed=3, ties=False)
    _, risk = M.risk_coverage_curve(s, y)
    assert M.aurc(s, y) == pytest.approx(risk.mean().item())


# ------------------------------------------------------------------------------------------ bad input
def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="both classes"):
        M.auroc(torch.randn(5), torch.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        M.auroc(torch.tensor([0.1, float("nan")]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"correct must have shape \(5,\)"):
        M.auac(torch.randn(5), torch.ones(4))
    with pytest.raises(ValueError, match="0/1"):
        M.auac(torch.randn(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="1-D"):
        M.auac(torch.randn(3, 2), torch.ones(3))
    with pytest.raises(ValueError, match="kind"):
        M.auac(torch.randn(3), torch.ones(3), kind="confidence")
    with pytest.raises(ValueError, match="positive"):
        M.fpr_at_tpr(torch.randn(3), torch.randn(3), positive="both")
    with pytest.raises(ValueError, match="tpr"):
        M.fpr_at_tpr(torch.randn(3), torch.randn(3), tpr=95)
    with pytest.raises(TypeError, match="integer"):
        M.aufc(torch.randn(3), torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0, 1, 1]))
