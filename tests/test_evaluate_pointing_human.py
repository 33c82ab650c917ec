"""The lecture's pointing game (human protocol): cell maps, the widget's state logic without a browser,
the simulated participant, and the metrics against attention maps with analytic answers."""
import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from inferml_course import evaluate as ev  # noqa: E402
from inferml_course.evaluate import pointing as human  # noqa: E402  (the pointing game's module)


def make_study(n=2, size=8, cell=4, csv_path=None):
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    return human.PointingStudy(x, "Which sign?", truths=["stop", "yield"][:n] * (n // 2 or 1), cell=cell,
                               csv_path=csv_path)


def test_cell_masks_expand_and_cut_at_the_border():
    cells = torch.tensor([[[True, False], [False, True]]])
    m = human.cell_masks(cells, 3, (5, 5))          # 2 x 2 cells of 3 pixels, the last ones cut to 2
    assert m.shape == (1, 5, 5)
    assert m[0, :3, :3].all() and not m[0, :3, 3:].any() and m[0, 3:, 3:].all() and int(m.sum()) == 9 + 4
    with pytest.raises(ValueError, match="grid shape"):
        human.cell_masks(cells, 2, (5, 5))   # 3 x 3 cells expected


def test_toggle_view_and_submit_state():
    study = make_study()
    assert (study.rows, study.cols) == (2, 2) and not study.sharp.any()
    assert not torch.equal(study.view(), study.images[0])        # everything blurred at first
    assert study.toggle(0, 1) is True and study.toggle(0, 1) is False and study.toggle(1, 0) is True
    v = study.view()
    assert torch.equal(v[:, 4:, :4], study.images[0, :, 4:, :4])  # the sharpened cell shows the image
    assert torch.equal(v[:, :4, :], study.blurred[0, :, :4, :])   # the others stay blurred
    assert torch.equal(study.attention_map(), human.cell_masks(study.sharp[None], 4, (8, 8))[0])
    record = study.submit("stop")
    assert record["cells"] == "0010" and record["sharpened"] == 1 and record["correct"] is True
    assert record["participant_kind"] == "human" and record["image"] == 0
    assert study.current == 1 and not study.sharp.any()           # next item, blurred again
    assert study.submit("stop")["correct"] is False               # image 1 is a yield sign
    assert study.current == 0
    with pytest.raises(ValueError, match="answer must be one of"):
        study.submit("no entry")
    with pytest.raises(ValueError, match="row must be"):
        study.toggle(2, 0)
    study.toggle(0, 0)
    study.clear()
    assert not study.sharp.any()


def test_human_records_go_to_csv_and_simulated_ones_do_not(tmp_path):
    path = tmp_path / "pointing.csv"
    study = make_study(csv_path=str(path))
    study.toggle(0, 0)
    study.submit("stop", participant="ann")
    regions = torch.zeros(2, 8, 8, dtype=torch.bool)
    regions[:, :4, 4:] = True
    study.simulate(human.SimulatedParticipant(regions))
    rows = human.load_pointing(path)
    assert len(rows) == 1 and rows[0]["participant"] == "ann" and rows[0]["cells"] == "1000"
    assert rows[0]["correct"] is True and rows[0]["sharpened"] == 1
    assert [r["participant_kind"] for r in study.records] == ["human", "simulated", "simulated"]
    with pytest.raises(ValueError, match="mix human and simulated"):
        human.pointing_evaluation({"m": torch.rand(2, 8, 8)}, study.records, study)
    out = tmp_path / "copy.csv"
    human.save_pointing(study.records, out)
    assert [r["cells"] for r in human.load_pointing(out)] == ["1000", "0100", "0100"]


def test_simulated_participant_is_deterministic_and_labelled():
    regions = torch.zeros(1, 8, 8, dtype=torch.bool)
    regions[0, 0:2, 0:4] = True     # half of cell (0, 0)
    regions[0, 4, 4] = True         # 1/16 of cell (1, 1)
    p = human.SimulatedParticipant(regions, min_share=0.25)
    assert p.cells(0, 4).tolist() == [[True, False], [False, False]]
    assert human.SimulatedParticipant(regions, min_share=0.9).cells(0, 4).tolist() == [[True, False], [False, False]]
    study = human.PointingStudy(torch.rand(1, 3, 8, 8), "Which sign?", truths=["stop"], cell=4)
    a = study.simulate(p)
    b = study.simulate(p)
    assert a[0]["cells"] == b[0]["cells"] and a[0]["participant_kind"] == "simulated" and a[0]["correct"]
    result = human.pointing_evaluation({"m": regions.float()}, study.records, study)
    assert "SIMULATED participant (not human data)" in result.table()


def test_metrics_against_attention_maps_have_analytic_values():
    # one image 8 x 8, cells of 4: the participant sharpens the top-left cell (16 pixels)
    study = human.PointingStudy(torch.rand(1, 3, 8, 8), "Which sign?", truths=["stop"], cell=4)
    study.toggle(0, 0)
    study.submit("stop")
    truth = torch.zeros(1, 8, 8)
    truth[0, :4, :4] = 1
    half = torch.zeros(1, 8, 8)
    half[0, :4, :8] = 1              # the top half: 32 pixels, 16 of them in the attention map
    res = human.pointing_evaluation({"exact": truth, "half": half}, study.records, study)
    assert res.scores["exact"] == {"iou": 1.0, "correlation": 1.0, "pixel_accuracy": 1.0, "n": 1}
    s = res.scores["half"]
    assert s["iou"] == pytest.approx(16 / 32)
    assert s["pixel_accuracy"] == pytest.approx(48 / 64)
    # Pearson correlation of two 0/1 vectors: (n11 n - n1. n.1) / sqrt(n1. n0. n.1 n.0)
    n, n11, a, b = 64, 16, 32, 16
    assert s["correlation"] == pytest.approx((n11 * n - a * b) / math.sqrt(a * (n - a) * b * (n - b)))
    assert res.kind == "human" and res.answers == 1 and res.participants == 1


def test_nothing_sharpened_is_left_out_with_a_note_and_correct_only():
    study = make_study()
    study.submit("yield")                       # wrong, nothing sharpened
    study.toggle(0, 0)
    study.submit("yield")                       # right, one cell
    maps = {"m": human.cell_masks(torch.tensor([[[True, False], [False, False]]] * 2), 4, (8, 8)).float()}
    res = human.pointing_evaluation(maps, study.records, study)
    assert res.scores["m"]["iou"] == 1.0 and any("no cell sharpened" in n for n in res.notes)
    only = human.pointing_evaluation(maps, study.records, study, correct_only=True)
    assert only.answers == 1


def test_widget_builds_and_buttons_drive_the_state():
    study = make_study()
    box = study.widget
    assert box is study.widget
    study._buttons[1][1].value = True             # a click
    assert bool(study.sharp[1, 1])
    study._on_submit()                            # no answer picked yet: nothing recorded
    assert study.records == [] and "Pick an answer" in study._status.value
    study._answer.value = "stop"
    study._on_submit()
    assert study.records[0]["cells"] == "0001" and study.current == 1
    assert not any(b.value for row in study._buttons for b in row)   # the buttons follow the new item
    study._buttons[0][0].value = True
    study._on_clear()
    assert not study.sharp.any() and not study._buttons[0][0].value
    fig = study.draw()
    assert fig.axes[0].get_title() == "Which sign?"
    plt.close(fig)


def test_bad_input_pointing():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="questions"):
        human.PointingStudy(x, ["a"], truths=["s", "t"])
    with pytest.raises(ValueError, match="truths"):
        human.PointingStudy(x, "q", truths=["s"])
    with pytest.raises(ValueError, match="options must contain"):
        human.PointingStudy(x, "q", truths=["s", "t"], options=["s"])
    with pytest.raises(ValueError, match="cell"):
        human.PointingStudy(x, "q", truths=["s", "t"], cell=0)
    with pytest.raises(ValueError, match="cell must be at most"):
        human.PointingStudy(x, "q", truths=["s", "t"], cell=9)
    with pytest.raises(ValueError, match="images"):
        human.PointingStudy(torch.rand(3, 8, 8), "q", truths=["s"])
    study = human.PointingStudy(x, "q", truths=["s", "t"])
    with pytest.raises(ValueError, match="kind"):
        study.submit("s", kind="robot")
    with pytest.raises(ValueError, match="there are no human records"):
        human.pointing_evaluation({"m": torch.rand(2, 8, 8)}, [], study)
    study.submit("s")
    with pytest.raises(ValueError, match="must have shape"):
        human.pointing_evaluation({"m": torch.rand(2, 4, 4)}, study.records, study)
    with pytest.raises(TypeError, match="study"):
        human.pointing_evaluation({"m": torch.rand(2, 8, 8)}, study.records, None)
    with pytest.raises(ValueError, match="min_share"):
        human.SimulatedParticipant(torch.zeros(2, 8, 8, dtype=torch.bool), min_share=0)


def test_exported_from_the_family():
    for name in ("PointingStudy", "SimulatedParticipant", "pointing_evaluation", "PointingResult", "load_pointing",
                 "save_pointing", "cell_masks"):
        assert name in ev.__all__ and getattr(ev, name) is getattr(human, name)
