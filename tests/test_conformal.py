"""Split conformal classification (``uncertainty.conformal``): hand examples, the finite-sample guarantee
on exchangeable synthetic data, properties, MAPIE 1.6 as the oracle, the batched model path and bad input."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from _hygiene import assert_same, snapshot
from conftest import require
from inferml_course._core import directions
from inferml_course.uncertainty import conformal as C


def _synthetic(n: int, k: int = 5, seed: int = 0, sharpness: float = 2.0):
    """Softmax probabilities of random logits and labels drawn from them: exchangeable rows."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(n, k, generator=g, dtype=torch.float64) * sharpness, 1)
    labels = torch.multinomial(probs, 1, generator=g)[:, 0]
    return probs, labels


# ------------------------------------------------------------------------------------------ by hand
def test_lac_threshold_and_sets_by_hand():
    # nine calibration images, two classes; the true label's probability p_y, so the LAC scores 1 - p_y are
    # 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.45, 0.6, 0.7. alpha = 0.2: k = ceil(10 * 0.8) = 8, the 8th smallest
    # score, 0.6; a label enters the set when its probability is at least 1 - 0.6 = 0.4.
    p_y = torch.tensor([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0])
    probs = torch.stack([p_y, 1 - p_y], 1)
    probs[labels == 1] = probs[labels == 1].flip(1)
    predictor = C.calibrate(probs, labels, alpha=0.2)
    assert predictor.threshold == pytest.approx(0.6, abs=1e-12)
    assert (predictor.score, predictor.alpha, predictor.n, predictor.randomized) == ("lac", 0.2, 9, False)
    test = torch.tensor([[0.5, 0.5], [0.7, 0.3], [0.35, 0.65], [0.99, 0.01]], dtype=torch.float64)
    expected = torch.tensor([[True, True], [True, False], [False, True], [True, False]])
    assert torch.equal(predictor.predict(test), expected)
    # alpha = 0.1 needs k = ceil(10 * 0.9) = 9 <= 9: the largest score; alpha = 0.09 needs k = 10 > 9
    assert C.calibrate(probs, labels, alpha=0.1).threshold == pytest.approx(0.7, abs=1e-12)
    with pytest.raises(ValueError, match=r"at least n = 11"):
        C.calibrate(probs, labels, alpha=0.09)


def test_aps_and_raps_scores_by_hand():
    probs = torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64)     # ranks: class 1, class 2, class 0
    # APS, not randomised: the mass up to and including the label
    assert torch.allclose(C.label_scores(probs, "aps"), torch.tensor([[1.0, 0.5, 0.8]], dtype=torch.float64))
    # randomised with u = 0.5: the mass before the label plus half its own probability
    u = torch.tensor([0.5], dtype=torch.float64)
    assert torch.allclose(C.label_scores(probs, "aps", randomized=True, u=u),
                          torch.tensor([[0.8 + 0.1, 0.25, 0.5 + 0.15]], dtype=torch.float64))
    # RAPS, lam = 0.1, k_reg = 1: ranks 1, 2, 3 pay 0, 0.1, 0.2
    assert torch.allclose(C.label_scores(probs, "raps", lam=0.1, k_reg=1),
                          torch.tensor([[1.0 + 0.2, 0.5, 0.8 + 0.1]], dtype=torch.float64))
    # LAC is 1 - p, and the calibration score is the true label's entry
    assert torch.allclose(C.label_scores(probs), 1 - probs)
    assert C.conformity_scores(probs, [2], "aps").item() == pytest.approx(0.8)


def test_coverage_set_size_and_breakdowns_by_hand():
    sets = torch.tensor([[True, True, False],
                         [False, True, False],
                         [False, False, False],
                         [True, True, True],
                         [True, False, False]])
    labels = torch.tensor([0, 2, 1, 2, 0])
    assert C.coverage(sets, labels) == pytest.approx(3 / 5)
    assert torch.equal(C.set_size(sets), torch.tensor([2, 1, 0, 3, 1]))
    assert C.set_size(sets).dtype == torch.long
    by_size = C.coverage_by_size(sets, labels)
    assert list(by_size) == [0, 1, 2, 3]
    assert by_size[0] == (0.0, 1) and by_size[1] == (0.5, 2) and by_size[2] == (1.0, 1) and by_size[3] == (1.0, 1)
    by_class = C.coverage_by_class(sets, labels)
    assert by_class[0] == 1.0 and by_class[2] == 0.5 and by_class[1] == 0.0
    assert math.isnan(C.coverage_by_class(sets[:2], labels[:2] * 0)[1])   # no image of class 1: NaN


def test_quantile_is_the_order_statistic():
    """The k-th smallest score, k = ceil((n + 1)(1 - alpha)): numpy's method="lower" at level k / n (MAPIE's
    rule). method="higher" at that level, as some tutorials write it, is the (k + 1)-th for k < n."""
    rng = np.random.default_rng(1)
    for n, alpha in [(9, 0.1), (10, 0.1), (50, 0.05), (137, 0.2), (1000, 0.01), (99, 0.01), (20, 0.3)]:
        scores = rng.random(n)
        k = math.ceil((n + 1) * (1 - alpha) - 1e-9)
        q = C.conformal_quantile(torch.from_numpy(scores), alpha)
        assert q == np.sort(scores)[k - 1] == np.quantile(scores, k / n, method="lower")
        if k < n:
            assert np.quantile(scores, k / n, method="higher") == np.sort(scores)[k] > q
    for alpha in (0.5, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.013, 0.01, 0.001):
        n = C.min_calibration_size(alpha)
        assert n == math.ceil(1 / alpha) - 1
        C.conformal_quantile(torch.rand(n, dtype=torch.float64), alpha)    # the smallest n works ...
        with pytest.raises(ValueError, match=rf"at least n = {n} .*ceil\(1/alpha\) - 1"):
            C.conformal_quantile(torch.rand(n - 1, dtype=torch.float64), alpha)   # ... one fewer does not


# ------------------------------------------------------------------------------------- the guarantee
@pytest.mark.parametrize("score, randomized", [("lac", False), ("aps", False), ("aps", True), ("raps", False),
                                               ("raps", True)])
def test_coverage_guarantee_over_many_splits(score, randomized):
    """Mean coverage over 200 independent calibration / test draws (n = 200 each, alpha = 0.1) lies in
    [1 - alpha, 1 - alpha + 1 / (n + 1)] up to sampling noise. The coverage of one draw has variance about
    alpha (1 - alpha) (1 / (n + 2) + 1 / n_test) = 9e-4 (calibration and test both random), so the mean of 200
    draws has a standard deviation of about 0.0021; the tolerance 0.008 is almost 4 of them. The data are
    fixed by the seed, so the test is deterministic; the tolerance says it did not pass by luck."""
    alpha, n, m, draws = 0.1, 200, 200, 200
    probs, labels = _synthetic(draws * (n + m), seed=7)
    probs, labels = probs.view(draws, n + m, -1), labels.view(draws, n + m)
    covered = []
    for r in range(draws):
        predictor = C.calibrate(probs[r, :n], labels[r, :n], alpha, score, randomized=randomized, lam=0.05,
                                k_reg=2, seed=r)
        covered.append(C.coverage(predictor.predict(probs[r, n:]), labels[r, n:]))
    mean = float(np.mean(covered))
    assert 1 - alpha - 0.008 <= mean <= 1 - alpha + 1 / (n + 1) + 0.008, mean


def test_classwise_covers_every_class():
    """Mondrian calibration: each class's coverage, averaged over 100 draws, is at least 1 - alpha (tolerance
    as above: about 40 calibration and 40 test images per class and draw, sd of the mean about 0.007, so
    0.02). The marginal threshold leaves the hardest class well below 1 - alpha on the same data."""
    alpha, n, m, draws, k = 0.1, 200, 200, 100, 5
    g = torch.Generator().manual_seed(3)
    # class 0 is ambiguous (its probability is spread), the others are easy: marginal coverage under-serves 0
    logits = torch.randn(draws * (n + m), k, generator=g, dtype=torch.float64)
    labels = torch.randint(0, k, (draws * (n + m),), generator=g)
    logits[torch.arange(len(labels)), labels] += torch.where(labels == 0, 0.5, 4.0).double()
    probs = torch.softmax(logits, 1).view(draws, n + m, k)
    labels = labels.view(draws, n + m)
    per_class, marginal = [], []
    for r in range(draws):
        cw = C.calibrate(probs[r, :n], labels[r, :n], alpha, classwise=True)
        plain = C.calibrate(probs[r, :n], labels[r, :n], alpha)
        per_class.append(C.coverage_by_class(cw.predict(probs[r, n:]), labels[r, n:]))
        marginal.append(C.coverage_by_class(plain.predict(probs[r, n:]), labels[r, n:]))
    per_class, marginal = torch.stack(per_class).nanmean(0), torch.stack(marginal).nanmean(0)
    assert (per_class >= 1 - alpha - 0.02).all(), per_class
    assert marginal[0] < 1 - alpha - 0.1, marginal


def test_classwise_thresholds_are_per_class_calibrations():
    probs, labels = _synthetic(600, seed=2)
    cw = C.calibrate(probs, labels, 0.1, "aps", classwise=True)
    assert cw.threshold.shape == (5,) and cw.threshold.dtype == torch.float64
    for c in range(5):
        scores = C.conformity_scores(probs[labels == c], labels[labels == c], "aps")
        assert cw.threshold[c].item() == C.conformal_quantile(scores, 0.1)
    s = C.label_scores(probs, "aps")
    assert torch.equal(cw.predict(probs), s <= cw.threshold[None, :])


# ---------------------------------------------------------------------------------------- properties
def test_sets_are_nested_in_alpha():
    probs, labels = _synthetic(800, seed=4)
    for score, randomized in [("lac", False), ("aps", False), ("aps", True), ("raps", True)]:
        previous = None
        for alpha in (0.01, 0.02, 0.05, 0.1, 0.2, 0.4):
            sets = C.calibrate(probs[:400], labels[:400], alpha, score, randomized=randomized).predict(probs[400:])
            if previous is not None:
                assert not (sets & ~previous).any(), (score, alpha)   # a larger alpha only removes labels
            previous = sets


def test_dtypes_and_containers_agree():
    probs, labels = _synthetic(300, seed=5)
    p32 = probs.float()
    for score, randomized in [("lac", False), ("aps", True), ("raps", False)]:
        a = C.calibrate(p32, labels, 0.1, score, randomized=randomized)
        b = C.calibrate(p32.double(), labels, 0.1, score, randomized=randomized)   # same values, float64
        c = C.calibrate(p32.numpy(), labels.numpy(), 0.1, score, randomized=randomized)
        d = C.calibrate(p32.tolist(), labels.tolist(), 0.1, score, randomized=randomized)
        e = C.calibrate(probs, labels, 0.1, score, randomized=randomized)          # float64 original
        assert a.threshold == b.threshold == c.threshold == d.threshold
        assert e.threshold == pytest.approx(a.threshold, abs=1e-6)
        assert torch.equal(a.predict(p32), b.predict(p32.double()))
        assert torch.equal(a.predict(p32), e.predict(probs))                     # no ties at this distance
        assert torch.equal(C.set_size(a.predict(p32)), C.set_size(a.predict(p32.numpy())))


def test_randomised_draws_are_seeded_and_separate():
    probs, labels = _synthetic(400, seed=6)
    a = C.calibrate(probs, labels, 0.1, "aps", randomized=True, seed=1)
    b = C.calibrate(probs, labels, 0.1, "aps", randomized=True, seed=1)
    c = C.calibrate(probs, labels, 0.1, "aps", randomized=True, seed=2)
    assert a.threshold == b.threshold != c.threshold
    assert torch.equal(a.predict(probs), b.predict(probs))
    # prediction draws use seed + 1 by default, an explicit seed otherwise
    assert torch.equal(a.predict(probs), a.predict(probs, seed=2))
    assert not torch.equal(a.predict(probs, seed=2), a.predict(probs, seed=5))
    u = torch.rand(400, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.predict(probs, seed=2), a.predict(probs, u=u))


def test_properties_with_hypothesis():
    """For random probabilities and labels: (1) sets are the top-m labels for some m (every score grows with
    the rank); (2) on the calibration set itself at least k = ceil((n + 1)(1 - alpha)) labels are covered
    (the threshold is the k-th smallest of their scores)."""
    hypothesis = require("hypothesis")
    st = require("hypothesis.strategies")
    from hypothesis.extra.numpy import arrays

    @hypothesis.settings(max_examples=40)
    @hypothesis.given(logits=arrays(np.float64, st.tuples(st.integers(10, 60), st.integers(2, 6)),
                                    elements=st.floats(-6, 6)),
                      alpha=st.floats(0.1, 0.6), score=st.sampled_from(["lac", "aps", "raps"]),
                      randomized=st.booleans(), seed=st.integers(0, 100))
    def check(logits, alpha, score, randomized, seed):
        randomized = randomized and score != "lac"
        probs = torch.softmax(torch.from_numpy(logits), 1)
        labels = torch.from_numpy(np.arange(len(logits)) % logits.shape[1])
        predictor = C.calibrate(probs, labels, alpha, score, randomized=randomized, lam=0.2, k_reg=1, seed=seed)
        u = torch.rand(len(probs), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        sets = predictor.predict(probs, u=u if randomized else None)
        order = probs.sort(dim=1, descending=True, stable=True).indices
        ranked = sets.gather(1, order)                    # flags in rank order: True ... True False ... False
        assert not (ranked[:, 1:] & ~ranked[:, :-1]).any()
        if not randomized:
            k = math.ceil((len(probs) + 1) * (1 - alpha) - 1e-9)
            assert int(sets[torch.arange(len(probs)), labels].sum()) >= k

    check()


# -------------------------------------------------------------------------------------------- oracle
class _Lookup:
    """A prefit scikit-learn classifier whose ``predict_proba`` returns given probabilities: the input
    is the row index, so MAPIE sees exactly our probability table."""

    _estimator_type = "classifier"

    def __init__(self, table):
        self.table = table
        self.classes_ = np.arange(table.shape[1])

    def fit(self, X, y):
        return self

    def predict_proba(self, X):
        return self.table[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X):
        return self.predict_proba(X).argmax(1)

    def get_params(self, deep=True):
        return {"table": self.table}

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, Tags, TargetTags
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags())


@pytest.fixture(scope="module")
def mapie_data():
    mapie = require("mapie.classification")
    rng = np.random.default_rng(0)
    n, m, k = 300, 200, 6
    logits = rng.normal(size=(n + m, k)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = (rng.random(n + m)[:, None] > probs.cumsum(1)).sum(1)       # sampled from the probabilities
    return mapie, probs, labels, n, m


def _mapie(mapie, probs, labels, n, alpha, score, seed=None):
    est = mapie.SplitConformalClassifier(_Lookup(probs), confidence_level=1 - alpha, conformity_score=score,
                                         prefit=True, random_state=seed)
    return est.conformalize(np.arange(n)[:, None], labels[:n])


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2, 0.3])
def test_lac_matches_mapie(mapie_data, alpha):
    """LAC: the same score (1 - p_y), the same quantile rule (MAPIE's ``method="lower"`` at ceil((n+1)(1-alpha))/n,
    our k-th order statistic) and the same sets ``1 - p <= q`` (MAPIE allows 1e-8 of float slack)."""
    mapie, probs, labels, n, m = mapie_data
    est = _mapie(mapie, probs, labels, n, alpha, "lac")
    _, sets = est.predict_set(np.arange(n, n + m)[:, None])
    ours = C.calibrate(probs[:n], labels[:n], alpha, "lac")
    assert np.allclose(est.conformity_scores.ravel(), C.conformity_scores(probs[:n], labels[:n]).numpy(), atol=1e-15)
    assert ours.threshold == pytest.approx(float(est._mapie_classifier.conformity_score_function_.quantiles_[0]),
                                           abs=1e-15)
    assert np.array_equal(sets[:, :, 0], ours.predict(probs[n:]).numpy())


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2])
def test_aps_matches_mapie(mapie_data, alpha):
    """APS. Conventions undone here:

    * MAPIE always randomises the calibration score, as mass up to and including y minus ``u p_y`` with
      ``u = RandomState(random_state).uniform(size=n)``; ours (the papers') is mass before y plus ``u p_y``:
      the same number with ``u -> 1 - u``. So our ``randomized=True`` with ``u = 1 - u_mapie`` gives its
      scores and its threshold. (MAPIE has no non-randomised APS calibration.)
    * its sets, ``include_last_label=``: ``"randomized"`` draws ``u' = RandomState(random_state).uniform(size=m)``
      again and equals ours with ``u = 1 - u'``; ``True`` (its default) includes the label that crosses the
      threshold, which is our randomised score at ``u = 0``; ``False`` stops before it, our ``u = 1``, except
      that MAPIE then adds the top label to an empty set (it never returns empty sets there; we do).
    """
    mapie, probs, labels, n, m = mapie_data
    seed = 3
    est = _mapie(mapie, probs, labels, n, alpha, "aps", seed)
    u_cal = np.random.RandomState(seed).uniform(size=n)
    ours = C.calibrate(probs[:n], labels[:n], alpha, "aps", randomized=True, u=1 - u_cal)
    mine = C.conformity_scores(probs[:n], labels[:n], "aps", randomized=True, u=1 - u_cal).numpy()
    assert np.allclose(est.conformity_scores.ravel(), mine, atol=1e-14)
    test_x = np.arange(n, n + m)[:, None]
    _, randomised = est.predict_set(test_x, conformity_score_params={"include_last_label": "randomized"})
    assert ours.threshold == pytest.approx(float(est._mapie_classifier.conformity_score_function_.quantiles_[0]),
                                           abs=1e-14)
    u_test = np.random.RandomState(seed).uniform(size=(m, 1))[:, 0]
    assert np.array_equal(randomised[:, :, 0], ours.predict(probs[n:], u=1 - u_test).numpy())
    _, last_in = est.predict_set(test_x, conformity_score_params={"include_last_label": True})
    assert np.array_equal(last_in[:, :, 0], ours.predict(probs[n:], u=np.zeros(m)).numpy())
    _, last_out = est.predict_set(test_x, conformity_score_params={"include_last_label": False})
    top = np.eye(probs.shape[1], dtype=bool)[probs[n:].argmax(1)]
    assert np.array_equal(last_out[:, :, 0], ours.predict(probs[n:], u=np.ones(m)).numpy() | top)
    # our non-randomised APS score is MAPIE's plus u p_y (the mass up to and including y)
    plain = C.conformity_scores(probs[:n], labels[:n], "aps").numpy()
    assert np.allclose(plain, est.conformity_scores.ravel() + u_cal * probs[np.arange(n), labels[:n]], atol=1e-14)


# ------------------------------------------------------------------------------------- model batches
def _tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 6 * 6, 5)).eval()


def test_predict_sets_runs_the_model_in_batches():
    model = _tiny_model()
    x = torch.rand(70, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
    labels = torch.arange(70) % 5
    predictor = C.calibrate(probs, labels, 0.2, "aps", randomized=True)
    before = snapshot(model)
    expected = predictor.predict(probs)
    for batch_size in (None, 16, "auto"):
        assert torch.equal(C.predict_sets(model, x, predictor, batch_size=batch_size), expected)
    assert torch.equal(predictor.predict_images(model, x.double()), expected)   # float64 images, float32 model
    assert_same(before, snapshot(model))


# ------------------------------------------------------------------------------------------ registry
def test_metric_directions_are_registered():
    assert directions.higher_is_better("set coverage") is True
    assert directions.higher_is_better("set size") is False
    assert dict(C.DIRECTIONS) == {"set coverage": True, "set size": False}


# ----------------------------------------------------------------------------------------- bad input
_P, _Y = _synthetic(50, k=4, seed=9)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"alpha": 0.0}, ValueError, "alpha"),
    ({"alpha": 1.0}, ValueError, "alpha"),
    ({"alpha": -0.1}, ValueError, "alpha"),
    ({"alpha": float("nan")}, ValueError, "alpha"),
    ({"alpha": "0.1"}, TypeError, "alpha"),
    ({"alpha": 0.01}, ValueError, r"too small .* at least n = 99"),
    ({"score": "thr"}, ValueError, r"score .*lac, aps, raps"),
    ({"randomized": "yes"}, TypeError, "randomized"),
    ({"randomized": 1}, TypeError, "randomized"),
    ({"randomized": True, "score": "lac"}, ValueError, "randomized"),
    ({"classwise": None}, TypeError, "classwise"),
    ({"classwise": True, "alpha": 0.05}, ValueError, r"class\(es\)"),
    ({"lam": -1.0, "score": "raps"}, ValueError, "lam"),
    ({"k_reg": 1.5, "score": "raps"}, TypeError, "k_reg"),
    ({"seed": 0.5}, TypeError, "seed"),
    ({"u": torch.rand(3, dtype=torch.float64), "score": "aps", "randomized": True}, ValueError, r"u must .*\(50,\)"),
    ({"u": torch.rand(50, dtype=torch.float64), "score": "aps"}, ValueError, "randomized=True"),
])
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        C.calibrate(_P, _Y, **kwargs)


@pytest.mark.parametrize("probs, labels, error, match", [
    (torch.randn(50, 4), _Y, ValueError, r"probs must lie in \[0, 1\].*logits"),
    (_P * 1.01, _Y, ValueError, r"each row of probs must sum to 1.*softmax"),
    (_P.clone().fill_(float("nan")), _Y, ValueError, "probs contains NaN"),
    (_P[:, :1], _Y, ValueError, "K >= 2"),
    (_P[0], _Y, ValueError, r"probs must have shape \(N, K\)"),
    ([[0.5, 0.5], [1.0]], _Y, ValueError, "probs must be a rectangular array"),
    ("probs", _Y, TypeError, "probs"),
    (_P, _Y + 4, ValueError, r"labels must be in \[0, 4\)"),
    (_P, -_Y - 1, ValueError, r"labels must be in \[0, 4\)"),
    (_P, _Y.double(), TypeError, "labels must be an integer tensor"),
    (_P, _Y[:40], ValueError, r"labels must have shape \(50,\)"),
])
def test_bad_probabilities_and_labels(probs, labels, error, match):
    with pytest.raises(error, match=match):
        C.calibrate(probs, labels)


def test_bad_input_elsewhere():
    predictor = C.calibrate(_P, _Y, 0.2)
    with pytest.raises(ValueError, match="calibrated on 4"):
        predictor.predict(torch.full((3, 5), 0.2))
    with pytest.raises(ValueError, match="sum to 1"):
        predictor.predict(torch.full((3, 4), 0.3))
    with pytest.raises(ValueError, match=r"sets must be a bool"):
        C.coverage(torch.rand(5, 4), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"sets must have shape \(N, K\)"):
        C.set_size(torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        C.coverage_by_class(torch.ones(5, 4, dtype=torch.bool), torch.full((5,), 4))
    with pytest.raises(ValueError, match="scores must be a 1-D"):
        C.conformal_quantile(torch.rand(5, 2), 0.5)
    with pytest.raises(TypeError, match="predictor must be a ConformalPredictor"):
        C.predict_sets(_tiny_model(), torch.rand(2, 1, 8, 8), "lac")
    with pytest.raises(ValueError, match="images"):
        C.predict_sets(_tiny_model(), torch.rand(1, 8, 8), predictor)


def test_sets_from_a_torchvision_model_equal_sets_from_its_probabilities():
    """predict_sets on a torchvision ResNet-18 (in-place ReLUs, residuals, batch norm; random weights; left in
    training mode, which the call runs in eval mode and restores) equals predict on its eval-mode softmax."""
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(num_classes=5)
    x = torch.rand(12, 3, 32, 32)
    with torch.no_grad():
        model.eval()
        probs = model(x).softmax(1)
        model.train()
    labels = torch.arange(12) % 5
    predictor = C.calibrate(probs[:10].double(), labels[:10], alpha=0.2)
    sets = C.predict_sets(model, x, predictor, batch_size=5)
    assert model.training
    assert torch.equal(sets, predictor.predict(probs))
