"""Membership inference: metrics against brute force and scikit-learn, attacks on tiny targets, bad input."""
import pytest
import torch
from hypothesis import example, given, settings, strategies as st

from inferml_course.intervene import membership as mia


# -------------------------------------------------------------------------------------- metrics
def brute_tpr_at_fpr(scores, is_member, fpr):
    """Every threshold t among the scores (and +inf) flags ``score >= t`` as a member, so tied scores
    are never split; FPR and TPR are exact count ratios (Python floats: a float32 ``.mean()`` rounds
    6/20 to 0.30000001, past ``fpr=0.3``, and loses the operating point at exactly the target)."""
    best = 0.0
    neg = scores[~is_member]
    pos = scores[is_member]
    for t in torch.cat([scores, torch.tensor([float("inf")], dtype=scores.dtype)]).unique():
        f = int((neg >= t).sum()) / neg.numel()
        if f <= fpr + 1e-12:
            best = max(best, int((pos >= t).sum()) / pos.numel())
    return best


# 22 scores 0.0 then 7 scores 1.0 (8 and 1 members): hypothesis found it, see the regression test below
TIED = [(0.0, True)] * 8 + [(0.0, False)] * 14 + [(1.0, True)] + [(1.0, False)] * 6


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5, allow_nan=False), st.booleans()), min_size=4, max_size=40),
       st.sampled_from([0.0, 0.01, 0.1, 0.3, 1.0]))
@example(TIED, 0.3)
def test_tpr_at_fpr_matches_brute_force(pairs, fpr):
    scores = torch.tensor([v for v, _ in pairs], dtype=torch.float64)
    member = torch.tensor([m for _, m in pairs])
    if member.all() or not member.any():
        member[0] = not bool(member[0])
    assert mia.tpr_at_fpr(scores, member, fpr) == pytest.approx(brute_tpr_at_fpr(scores, member, fpr))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tpr_at_fpr_ties_and_an_fpr_equal_to_the_target(dtype):
    """Scores ``[0.0]*22 + [1.0]*7``: 9 members, 20 non-members. The threshold 1.0 flags all seven
    tied 1.0s (no threshold splits them): FPR 6/20 = 0.3 exactly, TPR 1/9. At ``fpr=0.3`` that point
    counts (FPR <= target); the old brute force computed the FPR as a float32 mean, 0.30000001,
    rejected it and said 0.0."""
    scores = torch.tensor([v for v, _ in TIED], dtype=dtype)
    member = torch.tensor([m for _, m in TIED])
    assert (int(member.sum()), int((~member).sum())) == (9, 20)
    assert mia.tpr_at_fpr(scores, member, 0.3) == pytest.approx(1 / 9)
    assert brute_tpr_at_fpr(scores, member, 0.3) == pytest.approx(1 / 9)
    # below 0.3 the only operating point is threshold +inf, (0, 0): half of a tie is not reachable
    for fpr in (0.0, 0.05, 0.29):
        assert mia.tpr_at_fpr(scores, member, fpr) == 0 == brute_tpr_at_fpr(scores, member, fpr)
    # from FPR 1 (threshold 0.0, everything flagged) TPR is 1
    assert mia.tpr_at_fpr(scores, member, 1.0) == 1 == brute_tpr_at_fpr(scores, member, 1.0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=4, max_size=40), st.randoms(use_true_random=False))
def test_report_matches_sklearn_and_is_monotone(values, rnd):
    from sklearn.metrics import roc_auc_score

    scores = torch.tensor(values, dtype=torch.float64)
    member = torch.tensor([rnd.random() < 0.5 for _ in values])
    if member.all() or not member.any():
        member[0] = not bool(member[0])
    report = mia.membership_report(scores, member)
    assert report["AUC"] == pytest.approx(roc_auc_score(member.numpy(), scores.numpy()))
    assert report["TPR@0.1%FPR"] <= report["TPR@1%FPR"] <= 1
    assert 0 <= report["advantage"] <= 1
    # a strictly increasing transform (exact in floating point: scaling by 4) changes nothing
    assert mia.membership_report(4 * scores, member) == pytest.approx(report)


def test_metrics_on_separable_and_constant_scores():
    member = torch.tensor([True] * 50 + [False] * 50)
    perfect = torch.cat([torch.linspace(1, 2, 50), torch.linspace(-2, -1, 50)])
    r = mia.membership_report(perfect, member)
    assert r["AUC"] == 1 and r["TPR@1%FPR"] == 1 and r["advantage"] == 1
    flat = mia.membership_report(torch.zeros(100), member)
    assert flat["AUC"] == 0.5 and flat["TPR@1%FPR"] == 0 and flat["advantage"] == 0


def test_loss_and_confidence_scores():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2])
    assert torch.allclose(mia.loss_scores(logits, y), -torch.nn.functional.cross_entropy(logits, y, reduction="none"))
    assert torch.allclose(mia.confidence_scores(logits, y), torch.softmax(logits, 1)[[0, 1], [0, 2]])
    f = mia.attack_features(logits, y, "label")
    assert f.shape == (2, 4) and torch.all(f[:, 1:].diff(dim=1) <= 0)
    assert mia.attack_features(logits).shape == (2, 3)


def test_threshold_attack():
    a = mia.ThresholdAttack().fit(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0.1, 0.2, 0.75]))
    assert a.threshold == pytest.approx(0.7)
    assert a.predict(torch.tensor([0.69, 0.7])).tolist() == [False, True]
    y = mia.ThresholdAttack().fit_yeom(torch.tensor([0.1, 0.3]))
    assert y.threshold == pytest.approx(-0.2)
    with pytest.raises(RuntimeError, match="fit"):
        mia.ThresholdAttack().predict(torch.zeros(2))


def test_split_pools_are_disjoint():
    p = mia.split_pools(100, 10, 3, seed=1)
    everything = torch.cat([p["target_in"], p["target_out"], *p["shadow_in"], *p["shadow_out"]])
    assert everything.numel() == 80 and everything.unique().numel() == 80
    with pytest.raises(ValueError, match="too few"):
        mia.split_pools(50, 10, 3)


# -------------------------------------------------------------------------------------- attacks
@pytest.fixture(scope="module")
def signs():
    from inferml_course import datasets

    d = datasets.load("signs", "train")
    return d.images[:4000], d.labels[:4000]


@pytest.fixture(scope="module")
def experiments(signs):
    x, y = signs
    return {r: mia.membership_experiment(x, y, r, n_members=300, n_shadow=2, seed=0, progress=False)
            for r in ("overfit", "regularised")}


def test_overfitting_leaks_membership(experiments):
    over, reg = experiments["overfit"], experiments["regularised"]
    # measured (seed 0, 300 members, 2 shadows): overfit shadow AUC ~0.83, loss AUC ~0.80; regularised ~0.5-0.6
    assert over["gap"]["gap"] > 0.2 and over["gap"]["train accuracy"] > 0.99
    assert over["reports"]["shadow"]["AUC"] > 0.75 and over["reports"]["loss"]["AUC"] > 0.7
    assert reg["gap"]["gap"] < over["gap"]["gap"]
    for attack in ("shadow", "loss"):
        assert reg["reports"][attack]["AUC"] < 0.63
        assert over["reports"][attack]["AUC"] - reg["reports"][attack]["AUC"] > 0.15
    assert over["yeom"] > 0.6


def test_shadow_attack_scores_are_probabilities(experiments):
    s = experiments["overfit"]["scores"]["shadow"]
    assert s.shape == (600,) and s.min() >= 0 and s.max() <= 1


def test_mlp_attack_model(signs, experiments):
    x, y = signs
    e = experiments["overfit"]
    attack = mia.ShadowAttack("mlp", "label").fit_shadows(e["shadows"], x, y)
    idx = torch.cat([e["pools"]["target_in"], e["pools"]["target_out"]])
    scores = attack.score(mia.model_outputs(e["target"], x[idx]), y[idx])
    assert mia.membership_report(scores, e["is_member"])["AUC"] > 0.7


def test_train_recipe_is_deterministic(signs):
    x, y = signs
    a = mia.train_recipe(x[:64], y[:64], "regularised", 9, seed=3, progress=False)
    b = mia.train_recipe(x[:64], y[:64], "regularised", 9, seed=3, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not a.training


# ------------------------------------------------------------------------------------ bad input
def test_bad_input():
    member = torch.tensor([True, False, True, False])
    with pytest.raises(ValueError, match="both"):
        mia.membership_report(torch.rand(4), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        mia.tpr_at_fpr(torch.rand(4), member[:3])
    with pytest.raises(ValueError, match="NaN"):
        mia.membership_report(torch.tensor([0.1, float("nan"), 0.2, 0.3]), member)
    with pytest.raises(ValueError, match="fpr"):
        mia.tpr_at_fpr(torch.rand(4), member, 1.5)
    with pytest.raises(ValueError, match="0 and 1"):
        mia.membership_report(torch.rand(4), torch.tensor([0, 2, 1, 0]))
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        mia.loss_scores(torch.rand(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels out of range"):
        mia.loss_scores(torch.rand(4, 3), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(TypeError, match="integer"):
        mia.loss_scores(torch.rand(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="unknown features"):
        mia.attack_features(torch.rand(4, 3), features="raw")
    with pytest.raises(ValueError, match="labels are required"):
        mia.attack_features(torch.rand(4, 3), None, "label")
    with pytest.raises(ValueError, match="unknown classifier"):
        mia.ShadowAttack("forest")
    with pytest.raises(RuntimeError, match="fit"):
        mia.ShadowAttack().score(torch.rand(4, 3))
    with pytest.raises(ValueError, match="unknown recipe"):
        mia.train_recipe(torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), "lazy")
