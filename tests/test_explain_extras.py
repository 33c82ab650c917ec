"""Indirect explanations, localisation scores (hypothesis properties), the sanity check, display helpers,
the registry, the widgets and the lesson 02/03 checkers."""
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from inferml_course import checks, evaluate, explain
from inferml_course.datasets import ImageDataset
from inferml_course.explain import gradients, indirect

from _explain_models import images, small_cnn
from conftest import passes, require


# --- indirect explanations ---------------------------------------------------------------------------------

def test_filters_and_activations():
    model = small_cnn(torch.float32)
    x = images(2, dtype=torch.float32)
    assert torch.equal(explain.first_layer_filters(model), model.features.block1.conv1.weight)
    acts = explain.activation_maps(model, x, "features.block2")
    assert acts.shape == (2, 8, 8, 8)
    assert explain.activation_maps(model, x).shape == (2, 16, 4, 4)  # default: the cam layer
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        explain.first_layer_filters(nn.Linear(2, 2))


def test_receptive_field_of_the_small_cnn():
    model = small_cnn(torch.float32)
    assert explain.receptive_field(model, "features.block1") == (5, 1, 0.0)
    assert explain.receptive_field(model, "features.block2") == (14, 2, 0.5)
    assert explain.receptive_field(model, "features.block3")[:2] == (32, 4)


def test_receptive_field_is_where_the_gradient_lives():
    """The input support of a block2 unit's gradient is its 14 x 14 window (for an interior unit)."""
    model = small_cnn(torch.float64)
    x = images(1, h=32, w=32).requires_grad_(True)
    size, _, _ = explain.receptive_field(model, "features.block2")
    a = model.features[:3](model.normalize(x))  # block1, pool1, block2
    for row, col in ((6, 7), (8, 8)):
        (g,) = torch.autograd.grad(a[0, :, row, col].sum(), x, retain_graph=True)
        support = g[0].abs().sum(0) > 0
        rows, cols = support.any(1).nonzero()[:, 0], support.any(0).nonzero()[:, 0]
        top, left = indirect.patch_origin(model, "features.block2", row, col)
        assert top <= rows.min() and rows.max() <= top + size - 1
        assert left <= cols.min() and cols.max() <= left + size - 1
        assert rows.max() - rows.min() >= size - 3  # the window is not much larger than the support


def test_max_activating_patches():
    model = small_cnn(torch.float32)
    x = images(20, dtype=torch.float32)
    out = explain.max_activating_patches(model, x, "features.block2", channels=[0, 3], k=4, batch_size=7)
    assert out["patches"].shape == (2, 4, 3, 14, 14)
    acts = explain.activation_maps(model, x, "features.block2")
    best = acts[:, [0, 3]].flatten(2).amax(2)  # (N, 2)
    assert torch.allclose(out["values"], best.topk(4, dim=0).values.t())
    assert torch.equal(out["image_index"], best.topk(4, dim=0).indices.t())
    # the patch is centred on the unit: its centre pixel equals the image pixel under the unit's centre
    i, (r, c) = int(out["image_index"][0, 0]), out["location"][0, 0].tolist()
    size = out["size"]
    top, left = indirect.patch_origin(model, "features.block2", r, c)
    inside = [(a, b) for a in range(size) for b in range(size) if 0 <= top + a < 16 and 0 <= left + b < 16]
    a, b = inside[len(inside) // 2]
    assert torch.equal(out["patches"][0, 0, :, a, b], x[i, :, top + a, left + b])
    with pytest.raises(ValueError, match="channels"):
        explain.max_activating_patches(model, x, "features.block2", channels=[99])


def test_embeddings_neighbours_and_projections():
    model = small_cnn(torch.float32)
    x = images(30, dtype=torch.float32)
    feats = explain.embeddings(model, x, batch_size=8)
    assert torch.allclose(feats, model.embed(x), atol=1e-6)
    idx, dist = explain.nearest_neighbors(model, x[:3], x, k=4)
    assert torch.equal(idx[:, 0], torch.arange(3)) and torch.allclose(dist[:, 0], torch.zeros(3), atol=1e-3)
    assert (dist[:, 1:] >= dist[:, :-1]).all()
    idx_c, _ = explain.nearest_neighbors(model, x[:3], x, k=2, metric="cosine")
    assert torch.equal(idx_c[:, 0], torch.arange(3))
    pca = explain.project(feats, "pca")
    assert pca.shape == (30, 2)
    assert pca[:, 0].var() >= pca[:, 1].var() - 1e-6
    tsne = explain.project(feats, "tsne", seed=0, perplexity=5)
    assert tsne.shape == (30, 2) and torch.equal(tsne, explain.project(feats, "tsne", seed=0, perplexity=5))
    labels = torch.arange(30) % 3
    clustered = torch.randn(30, 4) * 0.01 + torch.nn.functional.one_hot(labels, 4).float() * 10
    assert explain.neighbor_agreement(clustered, labels, k=3) == 1.0
    with pytest.raises(ValueError, match="features="):
        explain.embeddings(nn.Sequential(nn.Flatten()), x)
    flat = nn.Sequential(nn.Flatten())
    assert torch.equal(explain.embeddings(flat, x, features=flat), x.flatten(1))


def test_representatives():
    model = small_cnn(torch.float32)
    x = images(40, dtype=torch.float32)
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
    labels = probs.argmax(1)  # every image is "correct"
    reps = explain.representatives(model, x, labels, range(5), strict=False)
    for c, r in enumerate(reps.tolist()):
        if r >= 0:
            assert labels[r] == c and probs[r, c] == probs[labels == c, c].max()
        else:
            assert not (labels == c).any()


# --- localisation scores: properties -------------------------------------------------------------------------

maps_strategy = st.integers(1, 4).flatmap(lambda n: st.tuples(
    st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=n * 36, max_size=n * 36),
    st.lists(st.booleans(), min_size=n * 36, max_size=n * 36), st.just(n)))


@settings(max_examples=60, deadline=None)
@given(maps_strategy, st.floats(0.1, 10))
def test_energy_inside_properties(data, scale):
    values, mask, n = data
    m = torch.tensor(values).view(n, 6, 6)
    k = torch.tensor(mask).view(n, 6, 6)
    k[:, 0, 0], k[:, 0, 1] = True, False  # neither the mask nor its complement is empty (both defined)
    e = evaluate.energy_pointing_game(m, k)
    assert ((e >= 0) & (e <= 1 + 1e-6)).all()
    assert torch.allclose(evaluate.energy_pointing_game(m * scale, k), e, atol=1e-5)      # scale invariant
    full = evaluate.energy_pointing_game(m, torch.ones_like(k))
    assert torch.allclose(full, (m.clamp_min(0).flatten(1).sum(1) > 0).double())  # all mass inside
    assert torch.allclose(e + evaluate.energy_pointing_game(m, ~k), full, atol=1e-5)      # inside + outside


@settings(max_examples=60, deadline=None)
@given(maps_strategy)
def test_pointing_game_properties(data):
    values, mask, n = data
    m = torch.tensor(values).view(n, 6, 6)
    k = torch.tensor(mask).view(n, 6, 6)
    k[:, 0, 0] = True  # a non-empty mask (an empty one has no answer: NaN, tested below)
    hit = evaluate.pointing_game(m, k)
    assert set(hit.tolist()) <= {0.0, 1.0}
    assert torch.equal(evaluate.pointing_game(torch.exp(m / 5), k), hit)  # invariant to increasing maps
    with pytest.warns(RuntimeWarning, match="empty"):
        assert evaluate.pointing_game(m, torch.zeros_like(k)).isnan().all()
    constant = torch.ones(n, 6, 6)
    assert torch.equal(evaluate.pointing_game(constant, k), torch.zeros(n, dtype=torch.float64))  # points nowhere


def test_localisation_examples_and_errors():
    m = torch.zeros(1, 4, 4)
    m[0, 1, 1] = 3.0
    m[0, 3, 3] = 1.0
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 1, 1] = True
    assert evaluate.pointing_game(m, mask).item() == 1.0
    assert evaluate.energy_pointing_game(m, mask).item() == pytest.approx(0.75)
    mask2 = torch.zeros_like(mask)
    mask2[0, 2, 2] = True
    assert evaluate.pointing_game(m, mask2).item() == 0.0
    assert evaluate.pointing_game(m, mask2, tolerance=1).item() == 1.0
    assert evaluate.mask_fraction(mask).item() == pytest.approx(1 / 16)
    assert evaluate.energy_pointing_game(torch.zeros(1, 4, 4), mask).item() == 0.0
    with pytest.raises(ValueError, match="masks must have"):
        evaluate.energy_pointing_game(m, mask[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        evaluate.pointing_game(torch.full((1, 4, 4), float("nan")), mask)


# --- sanity check and display helpers ------------------------------------------------------------------------

def test_randomized_copy_and_rank_correlation():
    model = small_cnn(torch.float32)
    state = torch.random.get_rng_state()
    clone = evaluate.randomized_copy(model, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not clone.training and clone is not model
    assert not torch.equal(clone.features.block1.conv1.weight, model.features.block1.conv1.weight)
    assert torch.equal(clone.normalize.mean, model.normalize.mean)
    again = evaluate.randomized_copy(model, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(clone.state_dict().values(), again.state_dict().values()))
    a = torch.randn(3, 5, 5)
    assert torch.allclose(evaluate.rank_correlation(a, a), torch.ones(3))
    assert torch.allclose(evaluate.rank_correlation(a, -a), -torch.ones(3))
    assert torch.allclose(evaluate.rank_correlation(a, torch.exp(a)), torch.ones(3))
    assert evaluate.rank_correlation(a, torch.zeros_like(a)).abs().max() == 0


def test_normalize_maps_and_overlay():
    m = torch.randn(3, 6, 6)
    mm = explain.normalize_maps(m)
    assert torch.allclose(mm.flatten(1).amin(1), torch.zeros(3)) and torch.allclose(mm.flatten(1).amax(1), torch.ones(3))
    am = explain.normalize_maps(m, "absmax")
    assert torch.allclose(am.abs().flatten(1).amax(1), torch.ones(3)) and torch.equal(am.sign(), m.sign())
    assert explain.normalize_maps(torch.ones(1, 4, 4)).abs().max() == 0  # constant map: no NaN
    pm = explain.normalize_maps(m, "percentile", percentile=50)
    assert pm.abs().max() <= 1
    rgb = explain.overlay(images(3, dtype=torch.float32, h=6, w=6), m)
    assert rgb.shape == (3, 3, 6, 6) and rgb.min() >= 0 and rgb.max() <= 1
    assert explain.overlay(images(3, 1, 6, 6, dtype=torch.float32), m.abs()).shape == (3, 3, 6, 6)


def test_registry_lists_every_method():
    assert len(explain.METHODS) == 16 and len(set(explain.METHODS)) == 16
    assert set(explain.FAMILIES) == set(explain.METHODS)
    for name in explain.METHODS:
        assert explain.method(name) is getattr(explain, name)


# --- widgets and checkers ------------------------------------------------------------------------------------

@pytest.fixture()
def tiny_dataset():
    x = images(12, h=16, w=16, dtype=torch.float32)
    labels = torch.arange(12) % 5
    masks = {"part": torch.zeros(12, 16, 16, dtype=torch.bool)}
    return ImageDataset(x, labels, [f"c{k}" for k in range(5)], masks, "tiny")


def test_widgets_draw_without_a_browser(tiny_dataset):
    require("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inferml_course.explain.widgets import ContrastExplorer, MethodExplorer

    model = small_cnn(torch.float32)
    explorer = MethodExplorer(model, tiny_dataset, methods=("saliency", "grad_cam", "occlusion"),
                              options={"occlusion": {"window": 4, "stride": 4}})
    fig = explorer.draw(3, "occlusion", 2)
    assert len(fig.axes) >= 3
    plt.close(fig)
    contrast = ContrastExplorer(model, tiny_dataset)
    maps = contrast.maps(1, p=2, q=3)
    assert int(maps["P"]) == 2 and int(maps["Q"]) == 3
    plt.close(contrast.draw(1, 2, -1))
    plt.close("all")


def test_lesson02_checkers():
    model = small_cnn(torch.float32)
    x = images(2, dtype=torch.float32)
    good = gradients.saliency(model, x, channels="keep")
    assert passes(checks.check_saliency_by_hand, good, model, x, None)
    with pytest.raises(AssertionError, match="TRY AGAIN.*signs"):
        checks.check_saliency_by_hand(good.abs(), model, x, None)
    with pytest.raises(AssertionError, match="TRY AGAIN"):
        checks.check_saliency_by_hand(..., model, x, None)
    _, gap = explain.integrated_gradients(model, x, steps=4, return_gap=True)
    assert passes(checks.check_ig_completeness, gap, model, x, None, steps=4)
    with pytest.raises(AssertionError, match="TRY AGAIN"):
        checks.check_ig_completeness(gap + 1, model, x, None, steps=4)
    other = small_cnn(torch.float32, seed=1)
    x4 = images(3, dtype=torch.float32)

    def rho(window, stride):
        maps = [explain.occlusion(m, x4, window=window, stride=stride) for m in (model, other)]
        return evaluate.rank_correlation(*maps).mean().item()

    assert passes(checks.check_occlusion_randomization, rho(4, 4), model, other, x4, None, window=4, stride=4)
    with pytest.raises(AssertionError, match="TRY AGAIN.*window 2 and stride 2"):  # another window is caught
        checks.check_occlusion_randomization(rho(2, 2), model, other, x4, None, window=4, stride=4)
    with pytest.raises(AssertionError, match="TRY AGAIN"):
        checks.check_occlusion_randomization(rho(4, 4) + 0.1, model, other, x4, None, window=4, stride=4)
    with pytest.raises(AssertionError, match="TRY AGAIN.*empty"):
        checks.check_occlusion_randomization(..., model, other, x4, None)


def test_lesson03_checkers():
    z = torch.tensor([2.0, 0.5, -1.0])
    right = torch.softmax(z, 0)
    right[1] -= 1
    assert passes(checks.check_contrast_signal, right, z, 1)
    with pytest.raises(AssertionError, match="sign is flipped"):
        checks.check_contrast_signal(-right, z, 1)
    maps = torch.randn(4, 6, 6, generator=torch.Generator().manual_seed(0))
    maps[3] = -maps[3].abs()                                    # no positive mass: 0 or NaN both accepted
    masks = torch.zeros(4, 6, 6, dtype=torch.bool)
    masks[:, 1:4, 2:5] = True
    pos = maps.clamp_min(0).flatten(1)
    energy = (pos * masks.flatten(1)).sum(1) / pos.sum(1)       # NaN for the last image
    assert passes(checks.check_energy_by_hand, energy, maps, masks)
    assert passes(checks.check_energy_by_hand, evaluate.energy_pointing_game(maps, masks), maps, masks)
    signed = (maps * masks).flatten(1).sum(1) / maps.flatten(1).sum(1)
    with pytest.raises(AssertionError, match="TRY AGAIN.*positive part"):
        checks.check_energy_by_hand(signed, maps, masks)
    with pytest.raises(AssertionError, match="TRY AGAIN.*uniform map"):
        checks.check_energy_by_hand(evaluate.mask_fraction(masks), maps, masks)
    with pytest.raises(AssertionError, match="TRY AGAIN.*one value per image"):
        checks.check_energy_by_hand(energy[:2], maps, masks)


def test_lesson00_corruption_checker():
    from inferml_course.datasets import CORRUPTIONS, corrupt

    model = small_cnn(torch.float32, num_classes=3)
    x, y = images(6, dtype=torch.float32), torch.tensor([0, 1, 2, 0, 1, 2])

    def by_hand(severity):
        with torch.no_grad():
            return {c: (model(corrupt(x, c, severity)).argmax(1) == y).float().mean().item() for c in CORRUPTIONS}

    assert passes(checks.check_corruption_accuracies, by_hand(5), model, x, y, severity=5)
    answer = by_hand(5)
    answer["fog"] = answer["fog"] + 0.5 if answer["fog"] < 0.5 else answer["fog"] - 0.5
    with pytest.raises(AssertionError, match="TRY AGAIN.*1 of 14.*fog"):
        checks.check_corruption_accuracies(answer, model, x, y, severity=5)
    with pytest.raises(AssertionError, match="TRY AGAIN.*missing"):
        checks.check_corruption_accuracies({"fog": 0.5}, model, x, y)
    with pytest.raises(AssertionError, match="TRY AGAIN.*percentages"):
        checks.check_corruption_accuracies({c: 100 * v for c, v in by_hand(5).items()}, model, x, y)


def test_lesson00_corruption_checker_names_the_wrong_severity():
    from inferml_course import datasets, models
    from inferml_course.datasets import CORRUPTIONS, corrupt

    signs = datasets.generate_signs(24, seed=0)  # the shipped signs_cnn: accuracies that differ by severity
    model = models.load_model("signs_cnn", device="cpu", progress=False)
    with torch.no_grad():
        at_three = {c: (model(corrupt(signs.images, c, 3)).argmax(1) == signs.labels).float().mean().item()
                    for c in CORRUPTIONS}
    assert passes(checks.check_corruption_accuracies, at_three, model, signs.images, signs.labels, severity=3)
    with pytest.raises(AssertionError, match="TRY AGAIN.*severity 3; the exercise asks for severity 5"):
        checks.check_corruption_accuracies(at_three, model, signs.images, signs.labels, severity=5)
