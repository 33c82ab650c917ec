"""Lesson support for 05/06: the 2-D toy, experiment tables, plots, widgets and exercise checkers."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from inferml_course import checks  # noqa: E402
from inferml_course.datasets import ImageDataset  # noqa: E402
from inferml_course.models import SmallCNN  # noqa: E402
from inferml_course.uncertainty import bayesian, calibration, experiments, metrics, plots, toy, trust  # noqa: E402

from conftest import passes, require  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = SmallCNN(3, 4, width=4, hidden=16).eval()
    with torch.no_grad():
        model.classifier.fc2.weight.mul_(6)
    return model


@pytest.fixture(scope="module")
def tiny_set():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(24, 3, 32, 32, generator=g)
    return ImageDataset(images, torch.arange(24) % 4, ["a", "b", "c", "d"], name="tiny")


# ------------------------------------------------------------------------------------------------ toy
def test_toy_moons_have_a_noisy_patch_and_a_gap():
    data = toy.make_toy_moons(n=400, seed=1)
    assert not data.in_gap(data.x).any()
    assert data.x.dtype == torch.float32 and set(data.y.tolist()) == {0, 1}
    again = toy.make_toy_moons(n=400, seed=1)
    assert torch.equal(data.x, again.x) and torch.equal(data.y, again.y)


def test_toy_decomposition_separates_aleatoric_from_epistemic():
    data = toy.make_toy_moons(n=400, seed=0)
    members = toy.train_toy_ensemble(data, members=5)
    grid = toy.toy_grid(data, resolution=40)
    regions = toy.region_means(toy.toy_decomposition(members, grid.points), data, grid.points)
    assert regions["noisy patch"]["aleatoric"] > 3 * regions["clean data"]["aleatoric"]
    assert regions["gap"]["epistemic"] > 3 * regions["clean data"]["epistemic"]
    mc = toy.train_toy_mlp(data, dropout=0.3, steps=100, seed=5)
    probs = toy.toy_probs(mc, grid.points[:50], samples=7)
    assert probs.shape == (7, 50, 2) and not mc.training
    rng = torch.get_rng_state()
    toy.train_toy_mlp(data, steps=5)
    assert torch.equal(rng, torch.get_rng_state())  # training does not disturb the caller's RNG


# ----------------------------------------------------------------------------------------- experiments
def test_corrupted_mix_is_deterministic_and_records_what_it_did(tiny_set):
    a = experiments.corrupted_mix(tiny_set, ["fog", "contrast"], seed=3, clean_fraction=0.25)
    b = experiments.corrupted_mix(tiny_set, ["fog", "contrast"], seed=3, clean_fraction=0.25)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, tiny_set.labels)
    clean = a.attributes["corruption"] == -1
    assert torch.equal(a.images[clean], tiny_set.images[clean])
    assert (a.attributes["severity"][~clean] >= 1).all() and not torch.equal(a.images[~clean], tiny_set.images[~clean])
    with pytest.raises(ValueError, match="non-empty"):
        experiments.corrupted_mix(tiny_set, [])


def test_misprediction_table(cnn, tiny_set):
    result = experiments.misprediction_table(cnn, tiny_set, ["msp", "gradtrust", "purview"])
    assert set(result["table"]) == {"msp", "gradtrust", "purview"}
    for row in result["table"].values():
        assert 0 <= row["AUAC"] <= 1 and 0 <= row["AUFC"] <= 1
    assert result["accuracy"] == pytest.approx(float(result["correct"].float().mean()))
    assert result["reference"]["random"] == pytest.approx(result["accuracy"])
    assert result["table"]["msp"]["AUAC"] == pytest.approx(metrics.auac(result["scores"]["msp"], result["correct"]))


def test_misprediction_table_variants(cnn, tiny_set):
    result = experiments.misprediction_table(cnn, tiny_set, ["gradnorm", "gradtrust_topk"],
                                             variants=experiments.TUTORIAL_VARIANTS)
    assert set(result["table"]) == {"gradnorm", "gradtrust_topk", *experiments.TUTORIAL_VARIANTS}
    x = tiny_set.images
    assert torch.allclose(result["scores"]["gradnorm_gradtrust_demo"],
                          trust.gradnorm(cnn, x, variant="gradtrust_demo").neg(), rtol=1e-5)
    # the slide's orientation is the reciprocal of ours: the misprediction AUROCs add up to 1
    a, b = (result["table"][k]["AUROC"] for k in ("gradtrust_topk", "gradtrust_topk_slide"))
    if a == a:  # NaN when every prediction is right (or wrong)
        assert a + b == pytest.approx(1.0)
    assert all(k in experiments.TUTORIAL_NAMES for k in result["table"])
    with pytest.raises(ValueError, match="already"):
        experiments.misprediction_table(cnn, tiny_set, ["msp"], variants={"msp": ("msp", {})})
    with pytest.raises(TypeError, match="variants"):
        experiments.misprediction_table(cnn, tiny_set, ["msp"], variants={"x": "gradnorm"})


def test_corruption_table_layout(cnn, tiny_set):
    table = experiments.corruption_table(cnn, tiny_set, ["fog", "contrast"], severities=(1, 5),
                                         names=["msp", "gradtrust"], n=12)
    assert set(table["auac"]) == {("fog", 1), ("fog", 5), ("contrast", 1), ("contrast", 5)}
    text = experiments.format_corruption_table(table, ["msp", "gradtrust"])
    assert text.startswith("AUAC (%) for Softmax / GradTrust: higher is better")
    assert "cells won" in text and "contrast" in text
    # the per-image scores and correctness behind each cell give back its AUAC
    for key, values in table["auac"].items():
        assert table["correct"][key].shape == (12,) and table["correct"][key].dtype == torch.bool
        assert float(table["correct"][key].float().mean()) == table["accuracy"][key]
        for name, value in values.items():
            assert table["scores"][key][name].shape == (12,)
            assert metrics.auac(table["scores"][key][name], table["correct"][key]) == value


def test_ood_table_and_format(cnn, tiny_set):
    sets = {"noise": torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(1))}
    table = experiments.ood_table(cnn, tiny_set.images, sets, ["msp", "gradnorm"])
    assert 0 <= table["msp"]["noise"]["AUROC"] <= 1 and 0 <= table["gradnorm"]["noise"]["FPR95"] <= 1
    text = experiments.format_ood_table(table)
    assert "higher is better" in text and "lower is better" in text


def test_quadrant_counts_add_up():
    g = torch.Generator().manual_seed(0)
    t, c = torch.rand(100, generator=g), torch.rand(100, generator=g)
    correct = torch.rand(100, generator=g) < 0.7
    q = experiments.quadrant_counts(t, c, correct)
    total = sum(v["correct"] + v["wrong"] for k, v in q.items() if k != "splits")
    assert total == 100 and sum(v["wrong"] for k, v in q.items() if k != "splits") == int((~correct).sum())
    q = experiments.quadrant_counts(t, c, correct, trust_split=2.0, confidence_split=-1.0)
    assert q["low trust, high confidence"]["correct"] + q["low trust, high confidence"]["wrong"] == 100


# ----------------------------------------------------------------------------------------------- plots
def test_reliability_diagram_counts_and_log_histograms():
    """The bin counts drawn under a reliability diagram are the bins' sizes; score_histograms takes a log axis."""
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(300, 4, generator=g) * 4, 1)
    labels = torch.randint(0, 4, (300,), generator=g)
    fig, (ax, count_ax) = plt.subplots(2, 1)
    plots.reliability_diagram(probs, labels, ax=ax, count_ax=count_ax)
    conf, correct = calibration.top_label(probs, labels)
    count = calibration.reliability_bins(conf, correct)["count"]
    heights = sorted(round(p.get_height()) for p in count_ax.patches)
    assert heights == sorted(int(n) for n in count if n > 0) and sum(heights) == 300
    assert count_ax.get_yscale() == "log"
    plt.close(fig)
    fig = plots.score_histograms(torch.randn(300, generator=g), torch.rand(300, generator=g) < 0.8, log_y=True)
    assert fig.axes[0].get_yscale() == "log"
    plt.close(fig)


def test_plots_return_figures():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(200, 5, generator=g) * 3, 1)
    labels = torch.randint(0, 5, (200,), generator=g)
    scores, correct = torch.randn(200, generator=g), torch.rand(200, generator=g) < 0.7
    figures = [
        plots.reliability_diagram(probs, labels),
        plots.score_histograms(scores, correct, title="t"),
        plots.trust_curves({"a": metrics.accuracy_curve(scores, correct)}, reference={"random": 0.7}),
        plots.quadrant_scatter(scores.exp(), probs.max(1).values, correct),
        plots.ood_histograms(scores.exp(), {"x": scores.exp() + 1}, log_x=True),
    ]
    data = toy.make_toy_moons(n=200)
    grid = toy.toy_grid(data, resolution=20)
    dec = bayesian.decompose(torch.softmax(torch.randn(3, len(grid.points), 2, generator=g), -1))
    figures.append(plots.uncertainty_maps(grid, {"m": dec}, data))
    for fig in figures:
        assert isinstance(fig, plt.Figure) and fig.axes
        assert fig.axes[0].get_title() or fig.axes[0].get_xlabel()
        plt.close(fig)


# --------------------------------------------------------------------------------------------- widgets
def test_widgets_draw_without_a_browser(cnn, tiny_set):
    require("ipywidgets")
    from inferml_course.uncertainty import widgets

    g = torch.Generator().manual_seed(0)
    explorer = widgets.TemperatureExplorer(torch.randn(100, 4, generator=g) * 4, torch.randint(0, 4, (100,), generator=g))
    fig = explorer.draw(2.0)
    assert "T = 2.00" in fig.axes[0].get_title()
    plt.close(fig)
    explorer.temperature.value = 1.5          # the observer redraws
    scores = widgets.ScoreDistributionExplorer(cnn, tiny_set, ["fog"], names=("msp", "gradtrust"), n=16)
    fig = scores.draw("fog", 2, "gradtrust")
    assert "fog, severity 2" in fig.axes[0].get_title()
    plt.close(fig)
    assert ("fog", 2) in scores._cache and ("fog", 3) in scores._cache    # the initial state was computed too
    scores.severity.value = 2
    plt.close("all")


# -------------------------------------------------------------------------------------------- checkers
def test_lesson05_checkers():
    probs = torch.softmax(torch.randn(4, 6, 3), -1)
    parts = bayesian.decompose(probs)
    assert passes(checks.check_decomposition, tuple(parts), probs)
    with pytest.raises(AssertionError, match="TRY AGAIN"):
        checks.check_decomposition((parts.total, parts.total, parts.epistemic), probs)
    with pytest.raises(AssertionError, match="log2"):
        checks.check_decomposition((parts.total / math.log(2), parts.aleatoric, parts.epistemic), probs)
    with pytest.raises(AssertionError, match="still empty"):
        checks.check_decomposition(..., probs)
    p2 = torch.softmax(torch.randn(50, 3) * 3, 1)
    y = torch.randint(0, 3, (50,))
    from inferml_course.uncertainty.calibration import ece, fit_temperature
    assert passes(checks.check_ece, ece(p2, y), p2, y)
    with pytest.raises(AssertionError, match="percentage"):
        checks.check_ece(100 * ece(p2, y) + 1, p2, y)
    logits = torch.randn(80, 3) * 4
    y = torch.randint(0, 3, (80,))
    assert passes(checks.check_temperature, fit_temperature(logits, y), logits, y)
    with pytest.raises(AssertionError, match="larger|smaller"):
        checks.check_temperature(fit_temperature(logits, y) * 2, logits, y)


def test_lesson06_checkers():
    logits = torch.randn(10, 5) * 3
    assert passes(checks.check_gradtrust, trust.gradtrust_from_logits(logits), logits)
    with pytest.raises(AssertionError, match="mean / max"):
        checks.check_gradtrust(1 / trust.gradtrust_from_logits(logits), logits)
    u = torch.randn(100)
    correct = torch.rand(100) < 0.6
    assert passes(checks.check_auac, metrics.auac(u, correct), u, correct)
    with pytest.raises(AssertionError, match="wrong way round"):
        checks.check_auac(metrics.auac(u, correct, kind="trust"), u, correct)


def test_lesson06_findings_checker():
    from inferml_course.findings import Finding

    seeds = {f"seed {s}": v for s, v in zip(range(11, 16), (0.2, 0.3, 0.25, 0.1, 0.4))}
    found = {"holds": Finding("06", "a", 0.3, 0.2, 0.4, seeds),
             "noise": Finding("06", "b", 0.05, -0.01, 0.1, seeds),
             "flips": Finding("06", "c", 0.3, 0.2, 0.4, dict(seeds, **{"seed 15": -0.1})),
             "few": Finding("06", "d", 0.3, 0.2, 0.4, {"seed 11": 0.2})}
    assert passes(checks.check_asserted_findings, ["holds"], found)
    assert passes(checks.check_asserted_findings, {"holds"}, found)
    for answer, hint in ((["holds", "noise"], "contains 0"), (["holds", "flips"], "depends on the training"),
                         (["holds", "few"], "at least 5"), ([], "also holds"), (["nope"], "not a key"),
                         ("holds", "list"), (..., "still empty")):
        with pytest.raises(AssertionError, match=hint):
            checks.check_asserted_findings(answer, found)


def test_lesson06_quadrant_checker(capsys):
    gen = torch.Generator().manual_seed(1)
    t, c = torch.randn(101, generator=gen).exp(), torch.rand(101, generator=gen)  # skewed: mean != median
    correct = torch.rand(101, generator=gen) < 0.6

    def by_hand(trust, confidence, split=torch.median, wrong=True, per="quadrant"):
        high_t, high_c = trust > split(trust), confidence > split(confidence)
        out = {}
        for t_name, t_mask in [("low trust", ~high_t), ("high trust", high_t)]:
            for c_name, c_mask in [("high confidence", high_c), ("low confidence", ~high_c)]:
                inside = t_mask & c_mask
                hits = (~correct[inside] if wrong else correct[inside]).float()
                out[f"{t_name}, {c_name}"] = {"quadrant": hits.mean(), "count": hits.sum(),
                                              "mistakes": hits.sum() / (~correct).sum(), "all": hits.sum() / 101}[per]
        return out

    assert passes(checks.check_quadrant_shares, by_hand(t, c), t, c, correct)
    out = capsys.readouterr().out
    assert "[PASS]" in out and "highest share of mistakes" in out
    hints = {"counts": by_hand(t, c, per="count"), "shares of correct": by_hand(t, c, wrong=False),
             "all the mistakes": by_hand(t, c, per="mistakes"), "all N images": by_hand(t, c, per="all"),
             "swapped": by_hand(c, t), "means": by_hand(t, c, split=torch.mean),
             "not quite": {k: v + 0.01 for k, v in by_hand(t, c).items()}, "four names": {"top left": 0.5},
             "dict": [0.1, 0.2, 0.3, 0.4], "empty": None}
    for hint, wrong in hints.items():
        with pytest.raises(AssertionError, match=f"TRY AGAIN.*{hint}"):
            checks.check_quadrant_shares(wrong, t, c, correct)
