"""Lesson 12's checkers and widget: right answers pass, missing or wrong ones get [TRY AGAIN] with a hint."""
import pytest
import torch

from conftest import passes, require
from inferml_course import checks
from inferml_course.uncertainty import conformal, plots


def _data(n=2000, k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g)
    logits[torch.arange(n), labels] += torch.where(labels < 2, 2.0, 6.0)   # two hard classes
    return torch.softmax(logits, 1), labels


@pytest.mark.parametrize("empty", [..., None])
def test_every_lesson12_checker_asks_for_an_answer(empty):
    probs, labels = _data()
    with pytest.raises(AssertionError, match=r"\[TRY AGAIN\].*empty"):
        checks.check_smallest_alpha(empty, 19)
    with pytest.raises(AssertionError, match=r"\[TRY AGAIN\].*empty"):
        checks.check_aps_scores(empty, probs, labels)
    with pytest.raises(AssertionError, match=r"\[TRY AGAIN\].*empty"):
        checks.check_conformal_choice(empty, probs[:1000], labels[:1000], probs[1000:], labels[1000:])


def test_smallest_alpha():
    assert passes(checks.check_smallest_alpha, 0.05, 19)
    assert passes(checks.check_smallest_alpha, torch.tensor(1 / 100), 99)
    for wrong, hint in [(1 / 19, "n \\+ 1"), (0.08, "smaller one"), (0.03, "larger alpha")]:
        with pytest.raises(AssertionError, match=hint):
            checks.check_smallest_alpha(wrong, 19)


def test_aps_scores():
    probs, labels = _data(300)
    right = conformal.conformity_scores(probs, labels, "aps")
    p_y = probs[torch.arange(300), labels].double()
    assert passes(checks.check_aps_scores, right.float(), probs, labels)
    for wrong, hint in [(right - p_y, "own probability"), (1 - p_y, "LAC"), (1 - right + p_y, "DECREASING"),
                        (right[:10], "shape")]:
        with pytest.raises(AssertionError, match=hint):
            checks.check_aps_scores(wrong, probs, labels)


def test_conformal_choice():
    probs, labels = _data()
    p_cal, y_cal, p_eval, y_eval = probs[:1000], labels[:1000], probs[1000:], labels[1000:]
    rates = {s: float((conformal.set_size(conformal.calibrate(p_cal, y_cal, 0.02, s, classwise=True, lam=0.1, k_reg=1)
                                          .predict(p_eval)) > 1).double().mean()) for s in ("lac", "aps", "raps")}
    best = min(rates, key=rates.get)
    good = {"score": best, "classwise": True, "alpha": 0.02, "randomized": False}
    assert passes(checks.check_conformal_choice, good, p_cal, y_cal, p_eval, y_eval)
    worst = max(rates, key=rates.get)
    for change, hint in [({"randomized": True}, "coin"), ({"classwise": False}, "EVERY class"),
                         ({"alpha": 0.05}, "more often"), ({"alpha": 0.01}, "costs re-checks"),
                         ({"score": worst}, "re-check rates"), ({"score": "thr"}, "one of")]:
        with pytest.raises(AssertionError, match=hint):
            checks.check_conformal_choice({**good, **change}, p_cal, y_cal, p_eval, y_eval)
    with pytest.raises(AssertionError, match="keys"):
        checks.check_conformal_choice({"score": best}, p_cal, y_cal, p_eval, y_eval)


def test_conformal_figures_and_explorer():
    require("ipywidgets")
    import matplotlib.pyplot as plt
    from inferml_course.uncertainty import widgets

    probs, labels = _data(400, k=4)
    images = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    explorer = widgets.ConformalExplorer(probs[:200], labels[:200], images, probs[200:], labels[200:],
                                         ["a", "b", "c", "d"], index=3)
    for score in ("lac", "aps", "raps"):
        fig = explorer.draw(0.1, score, 3)
        assert "coverage" in fig._suptitle.get_text()
        plt.close(fig)
    _, sets = explorer.sets(0.1, "aps")
    _, larger = explorer.sets(0.05, "aps")
    assert not (sets & ~larger).any()            # nested as alpha moves: the draws are fixed per image
    fig = plots.set_cooccurrence(sets, ["a", "b", "c", "d"])
    assert len(fig.axes) == 2                    # the heatmap and its colour bar
    plt.close(fig)
