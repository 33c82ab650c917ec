"""Perceptual components (Yarici et al., ICIP 2024): views, masks, the RELAX aggregation and the maps."""
import numpy as np
import pytest
import torch

from inferml_course import fisher
from inferml_course.fisher import perceptual as P
from inferml_course.models import SmallCNN

from _hygiene import arm_for_hygiene, assert_same, snapshot


def test_grayscale_is_torchvision_luma():
    x = torch.rand(2, 3, 5, 5)
    gray = P.grayscale(x)
    expected = 0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert gray.shape == x.shape and all(torch.allclose(gray[:, c], expected) for c in range(3))
    one = torch.rand(2, 1, 5, 5)
    assert P.grayscale(one) is one
    with pytest.raises(ValueError, match="1 or 3 channels"):
        P.grayscale(torch.rand(1, 2, 4, 4))


def test_edges_of_a_vertical_step_are_one_thin_column():
    x = torch.zeros(1, 3, 16, 16)
    x[..., 8:] = 1.0
    edges, strong = P.edge_views(x)
    dark = edges[0, 0] < 1
    columns = dark.any(0).nonzero()[:, 0].tolist()
    assert len(columns) == 1 and columns[0] in (7, 8), columns  # non-maximum suppression: one column
    assert dark[:, columns[0]].all()
    assert edges.min() == 0.0 and edges.max() == 1.0  # 1 - thin / max: the strongest edge is black
    assert strong[0, 0, :, 7:9].all() and not strong[0, 0, :, :5].any() and not strong[0, 0, :, 12:].any()
    flat, none = P.edge_views(torch.full((1, 3, 8, 8), 0.3))
    assert (flat == 1).all() and (none == 0).all()  # no edges: an all-white edge image, no strong edge


def test_masks_are_in_range_seeded_and_keep_the_right_share():
    gen = torch.Generator().manual_seed(0)
    m = P.relax_masks(400, (32, 32), gen)
    assert m.shape == (400, 1, 32, 32) and m.min() >= 0 and m.max() <= 1
    assert m.mean().item() == pytest.approx(0.5, abs=0.03)
    c = P.component_masks(400, (32, 32), torch.Generator().manual_seed(0))
    assert c.shape == (400, 1, 32, 32) and c.min() >= 0 and c.max() <= 1
    assert c.mean().item() == pytest.approx(0.7, abs=0.04)
    again = P.component_masks(400, (32, 32), torch.Generator().manual_seed(0))
    assert torch.equal(c, again)
    with pytest.raises(ValueError, match="p_keep"):
        P.relax_masks(4, (8, 8), gen, p_keep=1.5)
    with pytest.raises(ValueError, match="scale"):
        P.component_masks(4, (8, 8), gen, scale=(0.5, 0.1))


def test_relax_importance_equals_the_authors_running_update():
    gen = torch.Generator().manual_seed(1)
    masks = torch.rand(50, 6, 7, generator=gen)
    sims = torch.rand(50, generator=gen) * 2 - 1
    importance, weights = torch.zeros(6, 7, dtype=torch.float64), torch.full((6, 7), 1e-10, dtype=torch.float64)
    for s, m in zip(sims.double(), masks.double()):  # Relax.py, one mask at a time
        weights += m
        importance += m * (s - importance) / weights
    raw = P.relax_importance(sims, masks, standardize=False)
    assert torch.allclose(raw.double(), importance, atol=1e-6)
    z = P.relax_importance(sims, masks[:, None])
    assert torch.allclose(z.double(), (importance - importance.mean()) / importance.std(), atol=1e-5)
    assert (P.relax_importance(torch.ones(3), torch.rand(3, 4, 4)) == 0).all()  # constant map: zeros, not NaN


def test_map_correlation_is_pearson():
    gen = torch.Generator().manual_seed(2)
    a, b = torch.rand(3, 5, 5, generator=gen), torch.rand(3, 5, 5, generator=gen)
    r = P.map_correlation(a, b)
    for i in range(3):
        assert r[i].item() == pytest.approx(np.corrcoef(a[i].flatten(), b[i].flatten())[0, 1], abs=1e-6)
    assert torch.allclose(P.map_correlation(a, 2 * a + 1), torch.ones(3))
    assert torch.allclose(P.map_correlation(a, -a), -torch.ones(3))
    assert (P.map_correlation(a, torch.ones(3, 5, 5)) == 0).all()
    with pytest.raises(ValueError, match="same shape"):
        P.map_correlation(a, b[:2])


def _colour_on_the_left(x):
    """A representation that only sees the colour (R - G) of the left half and a constant."""
    left = (x[:, 0] - x[:, 1])[:, :, : x.shape[-1] // 2].flatten(1)
    return torch.cat([left, torch.ones(len(x), 1)], 1)


def test_colour_map_of_a_colour_only_representation_points_at_the_colour():
    x = torch.zeros(2, 3, 16, 16)
    x[:, 0] = 0.9  # red everywhere
    model = SmallCNN(3, 4, width=4, hidden=8).eval()
    maps = fisher.perceptual_components(model, x, n_masks=128, seed=0, features=_colour_on_the_left,
                                        components=("color", "shape"))
    colour = maps["color"]
    assert colour.shape == (2, 16, 16)
    assert (colour[:, :, :8].mean((1, 2)) > colour[:, :, 8:].mean((1, 2)) + 1.0).all()
    assert (maps["shape"] == 0).all()  # a flat image has no edges: every masked edge image is white * mask ...
    # ... whose left-half colour is 0, so every similarity is the same: a constant map, returned as zeros


def test_components_are_seeded_and_leave_the_model_as_they_found_it():
    torch.manual_seed(0)
    model = arm_for_hygiene(SmallCNN(3, 4, width=4, hidden=8))
    model.train()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    before = snapshot(model)
    with pytest.warns(UserWarning):
        first = fisher.perceptual_components(model, x, n_masks=16, seed=3, batch_size=7)
    assert_same(before, snapshot(model))
    assert set(first) == set(P.COMPONENTS) and all(m.shape == (2, 16, 16) for m in first.values())
    model.eval()
    again = fisher.perceptual_components(model, x, n_masks=16, seed=3, batch_size=None)
    for name in first:
        assert torch.allclose(first[name], again[name], atol=1e-5), name
    for m in first.values():  # z-scored maps
        assert torch.allclose(m.mean((1, 2)), torch.zeros(2), atol=1e-5)


def test_bad_input():
    model = SmallCNN(3, 4, width=4, hidden=8).eval()
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="component"):
        fisher.perceptual_components(model, x, components=("colour",))
    with pytest.raises(ValueError, match="n_masks"):
        fisher.perceptual_components(model, x, n_masks=0)
    with pytest.raises(ValueError, match="x\\[None\\]"):
        fisher.perceptual_components(model, x[0])
    gray_model = SmallCNN(1, 4, width=4, hidden=8).eval()
    with pytest.raises(ValueError, match="colour"):
        fisher.perceptual_components(gray_model, torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="blur_sigma"):
        fisher.perceptual_views(x, blur_sigma=0)
