"""The core ranks (_core.ranks) against scipy: average ranks with ties and NaN, Kendall's tau-b, the
percentile bootstrap; and the package functions that use them (AUROC, rank_methods, kendall_tau,
bootstrap_ci, the sanity check's rank correlation)."""
import inspect
import math

import numpy as np
import pytest
import torch
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st

from inferml_course import evaluate as ev
from inferml_course._core import ranks as R
from inferml_course.uncertainty import metrics as M

stats = require("scipy.stats")

values_with_ties = st.lists(st.sampled_from([0.0, 1.0, 1.0, 2.5, -3.0, 7.0]), min_size=1, max_size=30)


def _kendall_by_pairs(a, b):
    """Kendall's tau-b by counting pairs (the definition; what ranking.kendall_tau did by hand)."""
    c = d = ta = tb = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ta += 1
            elif db == 0:
                tb += 1
            elif (da > 0) == (db > 0):
                c += 1
            else:
                d += 1
    denom = math.sqrt((c + d + ta) * (c + d + tb))
    return (c - d) / denom if denom else float("nan")


@settings(max_examples=60, deadline=None)
@given(values_with_ties)
def test_average_ranks_equal_rankdata_with_ties(values):
    assert np.array_equal(R.average_ranks(values), stats.rankdata(values, method="average"))
    assert np.array_equal(R.average_ranks(values, descending=True), stats.rankdata([-v for v in values]))
    ranks = R.average_ranks(torch.tensor(values, dtype=torch.float32))
    assert ranks.dtype == torch.float64 and torch.equal(ranks, torch.from_numpy(stats.rankdata(values)))


@settings(max_examples=60, deadline=None)
@given(values_with_ties, st.lists(st.booleans(), min_size=30, max_size=30))
def test_nan_ranks_last_and_shares_the_last_ranks(values, holes):
    x = np.array([math.nan if h else v for v, h in zip(values, holes)])
    ranks = R.average_ranks(x)
    valid = ~np.isnan(x)
    # the valid values rank as scipy ranks them alone (scipy's nan_policy="omit" gives the same)
    assert np.array_equal(ranks[valid], stats.rankdata(x[valid]))
    omit = stats.rankdata(x, nan_policy="omit")
    assert np.array_equal(ranks[valid], omit[valid])
    n_valid, n = int(valid.sum()), len(x)
    assert np.all(ranks[~valid] == (n_valid + 1 + n) / 2)  # the mean of the last ranks
    assert ranks.sum() == pytest.approx(n * (n + 1) / 2)


def test_average_ranks_along_an_axis_and_none():
    x = np.array([[3.0, 1.0, 1.0], [0.0, np.nan, -1.0]])
    assert np.array_equal(R.average_ranks(x[:1], axis=1), stats.rankdata(x[:1], axis=1))
    assert np.array_equal(R.average_ranks(x, axis=1), [[3.0, 1.5, 1.5], [2.0, 3.0, 1.0]])
    assert np.array_equal(R.average_ranks([2.0, None, 1.0]), [2.0, 3.0, 1.0])
    assert R.average_ranks(np.array([])).shape == (0,)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=0, max_size=12))
def test_kendall_tau_equals_scipy_and_the_pair_count(pairs):
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    ours = ev.kendall_tau(a, b)
    by_pairs = _kendall_by_pairs(a, b)
    if len(a) < 2 or len(set(a)) == 1 or len(set(b)) == 1:
        assert math.isnan(ours) and math.isnan(by_pairs)
        return
    assert ours == pytest.approx(stats.kendalltau(a, b, variant="b")[0], abs=1e-12)
    assert ours == pytest.approx(by_pairs, abs=1e-12)


def test_kendall_tau_nan_and_length():
    assert math.isnan(ev.kendall_tau([1.0, math.nan, 3.0], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="same length"):
        ev.kendall_tau([1, 2], [1, 2, 3])


def _scipy_bootstrap(values, n_resamples, level, seed):
    kw = {"rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state":
          np.random.default_rng(seed)}
    res = stats.bootstrap((np.asarray(values, dtype=float),), np.mean, n_resamples=n_resamples, confidence_level=level,
                          method="percentile", vectorized=True, **kw)
    return res.confidence_interval.low, res.confidence_interval.high


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-2, 2), min_size=2, max_size=40), st.integers(0, 1000),
       st.sampled_from([0.5, 0.9, 0.95]))
def test_bootstrap_equals_scipy_percentile_bootstrap(values, seed, level):
    if len(set(values)) == 1:
        values = values + [values[0] + 1]  # scipy warns on degenerate samples; ours is tested below
    low, high = R.bootstrap_ci(values, n_resamples=300, level=level, seed=seed)
    ref = _scipy_bootstrap(values, 300, level, seed)
    assert low == pytest.approx(ref[0], abs=1e-12) and high == pytest.approx(ref[1], abs=1e-12)
    # the lesson's function is the same bootstrap
    assert ev.bootstrap_ci(torch.tensor(values, dtype=torch.float64), n_resamples=300, level=level, seed=seed) == (low, high)


def test_bootstrap_edge_cases():
    assert R.bootstrap_ci([1.5]) == (1.5, 1.5)  # one observation: a zero-width interval (scipy refuses)
    assert R.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert all(math.isnan(v) for v in R.bootstrap_ci([]))
    low, high = R.bootstrap_ci(np.arange(10.0), statistic=np.median, n_resamples=200, seed=1)
    assert 0 <= low <= high <= 9
    for bad in (0, 1, 1.5, True, float("nan")):
        with pytest.raises((TypeError, ValueError), match="level"):
            R.bootstrap_ci([1.0, 2.0], level=bad)
    with pytest.raises(ValueError, match="n_resamples"):
        R.bootstrap_ci([1.0, 2.0], n_resamples=0)


def test_package_functions_use_the_core_ranks():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (200,), generator=g).float()  # many ties
    labels = torch.rand(200, generator=g) < 0.3
    sk = require("sklearn.metrics")
    assert M.auroc(scores, labels) == pytest.approx(sk.roc_auc_score(labels.numpy(), scores.numpy()), abs=1e-12)
    ranks = ev.rank_methods({"deletion_auc": {"a": 0.2, "b": 0.1, "c": 0.2, "d": float("nan")},
                             "insertion_auc": {"a": 0.2, "b": 0.1, "c": 0.2, "d": None}})
    assert ranks["deletion_auc"] == {"a": 2.5, "b": 1.0, "c": 2.5, "d": 4.0}
    assert ranks["insertion_auc"] == {"a": 1.5, "b": 3.0, "c": 1.5, "d": 4.0}
    tau = ev.kendall_tau(ranks["deletion_auc"], ranks["insertion_auc"])
    a, b = zip(*[(ranks["deletion_auc"][m], ranks["insertion_auc"][m]) for m in "abcd"])
    assert tau == pytest.approx(stats.kendalltau(a, b)[0])
    x = torch.rand(3, 4, 4, generator=g)
    y = x.clone()
    y[0] = y[0].flip(-1)
    rho = ev.rank_correlation(x, y)
    for i in range(3):
        assert float(rho[i]) == pytest.approx(stats.spearmanr(x[i].flatten(), y[i].flatten())[0], abs=1e-6)


def test_pearson_rows_equals_scipy_and_is_zero_for_constant_rows():
    import scipy.stats

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, 3, 5, generator=g), torch.rand(4, 3, 5, generator=g)
    from inferml_course._core.ranks import pearson_rows
    r = pearson_rows(a, b)
    for i in range(4):
        assert abs(float(r[i]) - scipy.stats.pearsonr(a[i].flatten().numpy(), b[i].flatten().numpy())[0]) < 1e-6
    assert float(pearson_rows(a[:1], torch.ones(1, 3, 5))[0]) == 0.0
