"""Human evaluation form, simulated rater, CSV, bootstrap aggregation; ranking tables; the lesson's widget."""
import csv
import math

import matplotlib
import pytest
import torch
from hypothesis import given, settings, strategies as st

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from inferml_course import evaluate as ev  # noqa: E402
from inferml_course.evaluate import plots as evplots  # noqa: E402
from inferml_course.evaluate.widgets import GameExplorer  # noqa: E402

from _explain_models import images, small_cnn  # noqa: E402
from conftest import forget_direction, passes


def study_setup(n=3, seed=0, csv_path=None):
    x = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    masks = torch.zeros(n, 8, 8, dtype=torch.bool)
    masks[:, 2:6, 2:6] = True
    maps = {"good": masks.float() + 0.01, "bad": (~masks).float(), "meh": torch.rand(n, 8, 8)}
    study = ev.PairwiseStudy(x, maps, class_names=["stop"] * n, seed=seed, csv_path=csv_path)
    return study, masks


def test_items_cover_every_pair_and_image_with_both_sides():
    study, _ = study_setup(n=4)
    assert len(study.items) == 3 * 4
    seen = {(frozenset((it.robot_a, it.robot_b)), it.image) for it in study.items}
    assert len(seen) == 12
    assert {it.robot_a for it in study.items} == {"good", "bad", "meh"}  # sides are randomised


def test_answers_csv_roundtrip_and_preference_sign(tmp_path):
    path = tmp_path / "votes.csv"
    study, _ = study_setup(csv_path=str(path))
    first = study.items[0]
    rec = study.answer(1)  # robot A clearly more reasonable
    assert rec["preference_a"] == 2 and rec["robot_a"] == first.robot_a and rec["rater_kind"] == "human"
    assert study.current == 1
    study.answer(ev.SCALE[4][0], rater="ann")  # by text: robot B clearly more reasonable
    rows = ev.load_responses(path)
    assert [r["preference_a"] for r in rows] == [2, -2]
    assert rows[1]["rater"] == "ann"
    result = ev.aggregate(rows)
    m = result.methods
    assert m[first.robot_a]["n"] >= 1
    assert "human raters" in result.table() and "higher is better" in result.table()


def test_simulated_answers_are_labelled_and_never_written_to_the_human_csv(tmp_path):
    path = tmp_path / "votes.csv"
    study, masks = study_setup(csv_path=str(path))
    new = study.simulate(ev.SimulatedRater(masks, seed=1), n_raters=5)
    assert len(new) == 5 * len(study.items)
    assert all(r["rater_kind"] == "simulated" for r in study.responses)
    assert not path.exists()  # only human answers are saved as they come in
    result = ev.aggregate(study.responses)
    assert result.kind == "simulated"
    assert "SIMULATED" in result.table() and "not human data" in result.table()
    assert result.ranking()[0] == "good" and result.ranking()[-1] == "bad"
    good = result.methods["good"]
    assert good["low"] <= good["mean"] <= good["high"]
    fig = evplots.plot_study(result)
    assert "SIMULATED" in fig.axes[0].get_title()
    plt.close(fig)


def test_mixed_kinds_are_never_pooled():
    study, masks = study_setup()
    study.answer(3)
    study.simulate(ev.SimulatedRater(masks), n_raters=1)
    with pytest.raises(ValueError, match="mix"):
        ev.aggregate(study.responses)
    assert ev.aggregate(study.responses, kind="human").methods
    assert ev.aggregate(study.responses, kind="simulated").kind == "simulated"
    with pytest.raises(ValueError, match="no human"):
        ev.aggregate([r for r in study.responses if r["rater_kind"] == "simulated"], kind="human")


def test_form_widget_submit_and_draw():
    study, _ = study_setup()
    box = study.widget
    assert box is study.widget
    study._on_submit()  # nothing picked yet: no answer recorded
    assert study.responses == [] and "Pick" in study._status.value
    study._choices.value = ev.SCALE[1][0]
    study._on_submit()
    assert len(study.responses) == 1 and study.responses[0]["preference_a"] == 1
    assert study._choices.value is None and study.current == 1
    fig = study.draw(0)
    titles = [ax.get_title() for ax in fig.axes]
    assert any("robot A" in t for t in titles) and not any("good" in t or "bad" in t for t in titles)  # blind
    plt.close(fig)


def test_bad_input_human(tmp_path):
    study, masks = study_setup()
    for bad in (0, 6, 2.5, True, "maybe"):
        with pytest.raises(ValueError, match="choice"):
            study.answer(bad)
    with pytest.raises(ValueError, match="item"):
        study.answer(3, item=99)
    with pytest.raises(ValueError, match="kind"):
        study.answer(3, kind="robot")
    with pytest.raises(ValueError, match="at least two"):
        ev.PairwiseStudy(torch.rand(2, 3, 8, 8), {"a": torch.rand(2, 8, 8)})
    with pytest.raises(ValueError, match="shape"):
        ev.PairwiseStudy(torch.rand(2, 3, 8, 8), {"a": torch.rand(2, 8, 8), "b": torch.rand(2, 8, 7)})
    with pytest.raises(ValueError, match="pairs"):
        ev.PairwiseStudy(torch.rand(2, 3, 8, 8), {"a": torch.rand(2, 8, 8), "b": torch.rand(2, 8, 8)},
                         pairs=[("a", "c")])
    with pytest.raises(TypeError, match="SimulatedRater"):
        study.simulate(lambda *a: 3)
    bad_csv = tmp_path / "other.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing"):
        ev.load_responses(bad_csv)


def test_save_and_load_responses(tmp_path):
    study, masks = study_setup()
    study.simulate(ev.SimulatedRater(masks), n_raters=2)
    path = tmp_path / "sim.csv"
    ev.save_responses(study.responses, path)
    back = ev.load_responses(path)
    assert [r["preference_a"] for r in back] == [r["preference_a"] for r in study.responses]
    assert all(r["rater_kind"] == "simulated" for r in back)
    with open(path) as f:
        assert next(csv.reader(f)) == list(ev.human.FIELDS)


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.integers(-2, 2), min_size=1, max_size=40), seed=st.integers(0, 100))
def test_property_bootstrap_interval_contains_the_mean_and_stays_in_range(values, seed):
    v = torch.tensor(values, dtype=torch.float64)
    low, high = ev.bootstrap_ci(v, n_resamples=300, seed=seed)
    assert -2 <= low <= high <= 2
    assert min(values) <= low and high <= max(values)  # a mean of resampled answers stays within them
    if len(set(values)) == 1:
        assert low == high == values[0]


def test_bootstrap_is_reproducible_and_empty_is_nan():
    v = torch.tensor([1.0, -1.0, 2.0, 0.0])
    assert ev.bootstrap_ci(v, seed=3) == ev.bootstrap_ci(v, seed=3)
    assert all(math.isnan(a) for a in ev.bootstrap_ci(torch.tensor([])))


# -------------------------------------------------------------------------------------------- ranking
def test_ranking_respects_directions_and_ties():
    scores = {"insertion_auc": {"a": 0.9, "b": 0.5, "c": 0.5},
              "deletion_auc": {"a": 0.1, "b": 0.3, "c": 0.2},
              "part iou": {"a": 0.2, "b": 0.8, "c": float("nan")}}
    with pytest.raises(ValueError, match="direction.*'part iou'.*directions=.*'iou'"):
        ev.rank_methods(scores)  # no guessing from the last word of the name
    try:
        scores.update(ev.merge_summaries({m: {"iou": v} for m, v in scores.pop("part iou").items()},
                                         prefix={"iou": "part iou"}))  # registers "part iou" as "iou"
        ranks = ev.rank_methods(scores)
        table = ev.format_ranking(scores)
    finally:
        forget_direction("part iou")
    assert ranks["insertion_auc"] == {"a": 1, "b": 2.5, "c": 2.5}
    assert ranks["deletion_auc"] == {"a": 1, "c": 2, "b": 3}  # lower is better
    assert ranks["part iou"] == {"b": 1, "a": 2, "c": 3}  # NaN last; the direction of "iou"
    assert "insertion_auc ↑" in table and "deletion_auc ↓" in table and "higher is better" in table
    with pytest.raises(ValueError, match="direction"):
        ev.rank_methods({"mystery": {"a": 1.0}})
    assert ev.rank_methods({"mystery": {"a": 1.0, "b": 2.0}}, {"mystery": False})["mystery"]["a"] == 1


def test_kendall_tau_and_agreement():
    same = {"a": 1, "b": 2, "c": 3}
    assert ev.kendall_tau(same, same) == pytest.approx(1.0)
    assert ev.kendall_tau(same, {"a": 3, "b": 2, "c": 1}) == pytest.approx(-1.0)
    assert math.isnan(ev.kendall_tau({"a": 1}, {"a": 1}))
    agree = ev.agreement({"m1": same, "m2": same, "m3": {"a": 3, "b": 2, "c": 1}})
    assert agree[("m1", "m2")] == pytest.approx(1.0) and agree[("m1", "m3")] == pytest.approx(-1.0)
    merged = ev.merge_summaries({"a": {"iou": 0.5}}, {"a": {"deletion_auc": 0.2}, "b": {"deletion_auc": 0.1}},
                                prefix={"iou": "sign iou"})
    assert merged == {"sign iou": {"a": 0.5}, "deletion_auc": {"a": 0.2, "b": 0.1}}


# ------------------------------------------------------------------------------------ figures and widget
def test_figures_and_game_explorer():
    model, x = small_cnn(dtype=torch.float32), images(n=2, h=8, w=8, dtype=torch.float32)
    maps = {"a": torch.rand(2, 8, 8), "b": torch.rand(2, 8, 8)}
    res = ev.insertion_deletion(model, x, maps, steps=4)
    figs = [evplots.plot_game_curves(res), evplots.show_game_frames(x[0], {k: v[0] for k, v in maps.items()})]
    keep = ev.structure_curves(model, x, maps, thresholds=(0.0, 0.5))
    figs.append(evplots.plot_structure_curves(keep=keep))
    scores = ev.merge_summaries(res.summary())
    figs.append(evplots.plot_rank_matrix(scores))
    figs.append(evplots.plot_bits_example({"x": x[0]}, {"x": 100}))
    assert "lower is better" in figs[0].axes[1].get_title()
    assert "↓" in [t.get_text() for t in figs[3].axes[0].get_xticklabels()][1]
    explorer = GameExplorer(model, x, maps, res)
    frame = explorer.frame("a", "deletion", 0, 4)
    sub = ev.substrate_images(model, x, "blur")[0]
    assert torch.allclose(frame, sub)  # after the last deletion step only the substrate is left
    assert torch.allclose(explorer.frame("a", "insertion", 1, 4), x[1])
    fig = explorer.draw("b", "insertion", 1, 2)
    assert "higher is better" in fig.axes[2].get_title()
    explorer.step.value = 3  # the observer redraws without a browser
    for f in figs + [fig]:
        plt.close(f)


# ------------------------------------------------------------------------------------ lesson 10 checkers
def test_lesson10_checkers_pass_and_fail_with_hints(capsys):
    from inferml_course import checks

    full, masked = torch.tensor([0.8, 0.5]), torch.tensor([0.6, 0.6])
    assert passes(checks.check_average_drop, 12.5, full, masked)
    for wrong, hint in ((0.125, "percent"), (2.5, "clip"), (40.0, "Hint"), (..., "empty")):
        with pytest.raises(AssertionError, match=hint):
            checks.check_average_drop(wrong, full, masked)
    assert passes(checks.check_huffman_bits, 224, [45, 13, 12, 16, 9, 5])
    with pytest.raises(AssertionError, match="fixed-length"):
        checks.check_huffman_bits(300, [45, 13, 12, 16, 9, 5])
    with pytest.raises(AssertionError, match="not optimal"):
        checks.check_huffman_bits(225, [45, 13, 12, 16, 9, 5])
    assert "[PASS]" in capsys.readouterr().out


def test_lesson10_deletion_curve_checker(capsys):
    from inferml_course import checks, evaluate
    from _explain_models import images, small_cnn

    model = small_cnn(torch.float32)
    with torch.no_grad():  # random weights x 1.5: probabilities that move by about 0.01 along the game
        for p in model.parameters():
            p.mul_(1.5)
    x = images(1, h=8, w=8, dtype=torch.float32)[0]
    m = torch.rand(8, 8, generator=torch.Generator().manual_seed(0))
    substrate = evaluate.substrate_images(model, x[None], "black")[0]
    order = m.flatten().argsort(descending=True, stable=True)

    def by_hand(order, start, end):
        frames = []
        for k in range(17):
            moved = torch.zeros(64)
            moved[order[:round(k * 64 / 16)]] = 1
            moved = moved.view(1, 8, 8)
            frames.append(start * (1 - moved) + end * moved)
        with torch.no_grad():
            probs = torch.softmax(model(torch.stack(frames)), 1)
        return probs[:, model(x[None]).argmax()]

    assert passes(checks.check_deletion_curve, by_hand(order, x, substrate), model, x, m, steps=16, substrate="black")
    assert "deletion AUC" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="TRY AGAIN.*insertion curve"):
        checks.check_deletion_curve(by_hand(order, substrate, x), model, x, m, steps=16, substrate="black")
    with pytest.raises(AssertionError, match="TRY AGAIN.*descending"):
        checks.check_deletion_curve(by_hand((-m).flatten().argsort(descending=True, stable=True), x, substrate),
                                    model, x, m, steps=16, substrate="black")
    with pytest.raises(AssertionError, match="TRY AGAIN.*17 values"):
        checks.check_deletion_curve(by_hand(order, x, substrate)[:-1], model, x, m, steps=16, substrate="black")
