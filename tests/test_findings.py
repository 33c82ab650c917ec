"""inferml_course.findings: the paired bootstrap against scipy, the rule for asserting, recording and reading."""
import json

import numpy as np
import pytest
from scipy.stats import bootstrap

from inferml_course import findings


def _diff(a, b):
    return a.mean() - b.mean()


def test_paired_bootstrap_equals_scipy_paired():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 1, 200), rng.normal(0, 1, 200)
    ours = findings.paired_bootstrap(_diff, a, b, n_resamples=500, seed=3)
    ref = bootstrap((a, b), _diff, paired=True, vectorized=False, n_resamples=500, method="percentile",
                    rng=np.random.default_rng(3)).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high))


def test_paired_resampling_keeps_rows_together():
    # a statistic that is constant when rows stay paired has a zero-width interval
    x = np.arange(50.0)
    low, high = findings.paired_bootstrap(lambda a, b: float(np.mean(a - b)), x, x + 1.0, n_resamples=200)
    assert low == high == -1.0


@pytest.mark.parametrize("value,low,high,seeds,holds", [
    (0.2, 0.1, 0.3, {f"s{i}": 0.1 + i / 100 for i in range(5)}, True),
    (0.2, -0.01, 0.3, {f"s{i}": 0.1 for i in range(5)}, False),            # interval covers 0
    (0.2, 0.1, 0.3, {**{f"s{i}": 0.1 for i in range(4)}, "s4": -0.05}, False),  # one retraining flips
    (0.2, 0.1, 0.3, {f"s{i}": 0.1 for i in range(4)}, False),             # too few retrainings
    (-0.2, -0.3, -0.1, {f"s{i}": -0.1 for i in range(5)}, True),
    (0.0, -0.1, 0.1, {f"s{i}": 0.1 for i in range(5)}, False),
])
def test_the_rule_for_asserting(value, low, high, seeds, holds):
    f = findings.Finding("06", "effect", value, low, high, seeds)
    assert f.holds is holds
    assert ("holds" in f.verdict and "not asserted" not in f.verdict) is holds


def test_finding_records_for_the_seed_script_and_reads_the_seed_file(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERML_FINDINGS", str(tmp_path / "run"))
    seeds_file = tmp_path / "seeds.json"
    seeds_file.write_text(json.dumps({"06": {"gap": {f"seed {s}": 0.5 for s in range(11, 16)}}}))
    monkeypatch.setattr(findings, "SEEDS_FILE", seeds_file)
    rng = np.random.default_rng(0)
    f = findings.finding("06", "gap", _diff, rng.normal(1, 1, 100), rng.normal(0, 1, 100), n_resamples=200)
    assert f.low < f.value < f.high and f.low > 0 and f.holds
    assert f.seed_range == (0.5, 0.5)
    recorded = json.loads((tmp_path / "run" / "06.json").read_text())
    assert recorded["gap"]["value"] == pytest.approx(f.value)
    assert findings.seed_values("06", "other") == {} and findings.seed_values("05", "gap") == {}


def test_verdict_tells_unmeasured_from_seed_dependent():
    unmeasured = findings.Finding("03", "signs row", 0.05, 0.03, 0.07)
    flipping = findings.Finding("03", "row", 0.05, 0.03, 0.07, {f"s{i}": (-1) ** i * 0.1 for i in range(5)})
    assert "0 of the 5 retrainings" in unmeasured.verdict and "seed-dependent" not in unmeasured.verdict
    assert "seed-dependent" in flipping.verdict


def test_bad_input():
    with pytest.raises(ValueError, match="length"):
        findings.paired_bootstrap(_diff, np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="n_resamples"):
        findings.paired_bootstrap(_diff, np.zeros(5), np.zeros(5), n_resamples=10**9)


def test_plot_findings_draws_one_row_per_finding():
    fs = [findings.Finding("06", "a", 0.2, 0.1, 0.3, {f"s{i}": 0.2 for i in range(5)}),
          findings.Finding("06", "b", 0.05, -0.1, 0.2)]
    fig = findings.plot_findings(fs)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b", "a"]


def test_paired_bootstrap_keeps_boolean_masks():
    """A statistic may index with a boolean array (right vs wrong predictions): the rows keep their dtype."""
    import torch
    values, correct = torch.arange(40, dtype=torch.float32), torch.arange(40) % 3 == 0
    low, high = findings.paired_bootstrap(lambda v, c: float(v[c].mean() - v[~c].mean()), values, correct,
                                          n_resamples=50)
    assert low <= high
