"""Application evaluation: localisation metrics on maps with known answers, NaN on empty masks, properties."""
import warnings

import pytest
import torch
from hypothesis import given, settings, strategies as st

from inferml_course import evaluate as ev

METRICS = {
    "pointing_game": ev.pointing_game,
    "energy_pointing_game": ev.energy_pointing_game,
    "iou": ev.iou,
    "correlation": ev.correlation,
    "pixel_accuracy": ev.pixel_accuracy,
}


def square_masks(n=4, h=10, w=10):
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        masks[i, 2 + i % 3:6 + i % 3, 1 + i:5 + i] = True
    return masks


def test_perfect_inverted_random_are_ordered_for_every_metric():
    masks = square_masks()
    g = torch.Generator().manual_seed(0)
    perfect = masks.double() * (1 + 0.01 * torch.rand(masks.shape, generator=g, dtype=torch.float64))
    inverted = -perfect
    scores = ev.localization_scores({"perfect": perfect, "random": torch.rand(masks.shape, generator=g),
                                     "inverted": inverted}, masks)
    for metric in METRICS:  # all higher is better
        assert scores["perfect"][metric] >= scores["random"][metric] >= scores["inverted"][metric], metric
        assert scores["perfect"][metric] > scores["inverted"][metric], metric
    assert scores["perfect"] == pytest.approx({"pointing_game": 1.0, "energy_pointing_game": 1.0, "iou": 1.0,
                                               "correlation": scores["perfect"]["correlation"],
                                               "pixel_accuracy": 1.0})
    assert scores["perfect"]["correlation"] > 0.99
    assert scores["inverted"]["pointing_game"] == 0.0 and scores["inverted"]["iou"] == 0.0
    assert scores["inverted"]["correlation"] < -0.99


def test_known_values_by_hand():
    mask = torch.zeros(1, 2, 3, dtype=torch.bool)
    mask[0, 0, :2] = True  # 2 of 6 pixels
    heat = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 2.0, -1.0]]])
    assert ev.pointing_game(heat, mask).item() == 0.0  # the maximum (2.0) is outside
    assert ev.pointing_game(heat, mask, tolerance=1).item() == 1.0
    assert ev.energy_pointing_game(heat, mask).item() == pytest.approx(1 / 4)
    # min-max scaled: [[2/3, 1/3, 1/3], [2/3, 1, 0]] >= 0.5 -> {(0,0), (1,0), (1,1)}
    assert ev.iou(heat, mask, 0.5).item() == pytest.approx(1 / 4)
    assert ev.pixel_accuracy(heat, mask, 0.5).item() == pytest.approx(3 / 6)
    a = heat.flatten() - heat.mean()
    b = mask.flatten().double() - mask.double().mean()
    assert ev.correlation(heat, mask).item() == pytest.approx(float((a.double() * b).sum() / (a.double().norm() * b.norm())))


def test_constant_and_empty_maps():
    masks = square_masks(2)
    const = torch.full((2, 10, 10), 0.3)
    assert torch.equal(ev.pointing_game(const, masks), torch.zeros(2, dtype=torch.float64))  # points nowhere
    assert torch.equal(ev.correlation(const, masks), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(ev.iou(const, masks, 0.0), torch.zeros(2, dtype=torch.float64))
    area = masks.flatten(1).double().mean(1)
    assert torch.allclose(ev.energy_pointing_game(const, masks), area)  # uniform map: chance level
    assert torch.equal(ev.energy_pointing_game(-const, masks), torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(ev.pixel_accuracy(const, masks), 1 - area)  # marks nothing: right on the background


@pytest.mark.parametrize("name", list(METRICS))
def test_empty_masks_give_nan_with_a_warning(name):
    masks = square_masks(3)
    masks[1] = False
    heat = torch.rand(3, 10, 10)
    with pytest.warns(RuntimeWarning, match="1 of 3 values are NaN"):
        values = METRICS[name](heat, masks)
    assert torch.isnan(values[1]) and not torch.isnan(values[0]) and not torch.isnan(values[2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        METRICS[name](heat, square_masks(3))  # no warning when every mask has an answer


def test_full_masks_are_undefined_for_correlation_and_pixel_accuracy():
    masks = torch.ones(1, 4, 4, dtype=torch.bool)
    with pytest.warns(RuntimeWarning):
        assert torch.isnan(ev.correlation(torch.rand(1, 4, 4), masks)).all()
    with pytest.warns(RuntimeWarning):
        assert torch.isnan(ev.pixel_accuracy(torch.rand(1, 4, 4), masks)).all()


@pytest.mark.parametrize("name", list(METRICS))
def test_bad_input(name):
    fn = METRICS[name]
    heat = torch.rand(2, 5, 5)
    with pytest.raises(ValueError, match="shape"):
        fn(heat, torch.ones(2, 5, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        fn(heat, torch.ones(3, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        fn(torch.rand(5, 5), torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        fn(heat, torch.rand(2, 5, 5))
    with pytest.raises(TypeError, match="masks"):
        fn(heat, [[True]])
    with pytest.raises(ValueError, match="NaN"):
        fn(torch.full((2, 5, 5), float("nan")), torch.ones(2, 5, 5, dtype=torch.bool))
    # 0/1 integer masks are accepted as booleans
    masks = torch.zeros(2, 5, 5, dtype=torch.long)
    masks[:, 1:3, 1:3] = 1
    assert torch.allclose(fn(heat, masks), fn(heat, masks.bool()), equal_nan=True)


def test_threshold_bad_input():
    with pytest.raises(ValueError, match="threshold"):
        ev.iou(torch.rand(1, 3, 3), torch.ones(1, 3, 3, dtype=torch.bool), threshold=1.5)
    with pytest.raises(ValueError, match="tolerance"):
        ev.pointing_game(torch.rand(1, 3, 3), torch.ones(1, 3, 3, dtype=torch.bool), tolerance=-1)


maps_and_masks = st.integers(0, 10_000).map(lambda seed: (
    torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 4 - 1,
    torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(seed + 1)) < 0.3,
))


@settings(max_examples=40, deadline=None)
@given(data=maps_and_masks, scale=st.floats(0.1, 10), shift=st.floats(-3, 3))
def test_property_ranges_and_invariances(data, scale, shift):
    heat, masks = data
    masks[:, 0, 0] = True  # never empty
    masks[:, -1, -1] = False  # never full
    for name, fn in METRICS.items():
        v = fn(heat, masks)
        assert v.shape == (3,) and torch.isfinite(v).all(), name
        low = -1 if name == "correlation" else 0
        assert torch.all(v >= low - 1e-12) and torch.all(v <= 1 + 1e-12), name
    moved = heat * scale + shift  # a positive affine change of the map
    for name in ("pointing_game", "iou", "correlation", "pixel_accuracy"):
        assert torch.allclose(METRICS[name](moved, masks), METRICS[name](heat, masks), atol=1e-9), name
    assert torch.allclose(ev.energy_pointing_game(heat * scale, masks), ev.energy_pointing_game(heat, masks))
    # the mask itself is the best possible map for IoU, pixel accuracy and correlation
    for name in ("iou", "pixel_accuracy", "correlation"):
        assert torch.all(METRICS[name](masks.double(), masks) >= METRICS[name](heat, masks) - 1e-12), name


@settings(max_examples=40, deadline=None)
@given(data=maps_and_masks)
def test_property_energy_of_complementary_masks_adds_to_one(data):
    heat, masks = data
    masks[:, 0, 0] = True
    masks[:, -1, -1] = False
    heat = heat.abs() + 1e-3
    total = ev.energy_pointing_game(heat, masks) + ev.energy_pointing_game(heat, ~masks)
    assert torch.allclose(total, torch.ones(3, dtype=torch.float64))
