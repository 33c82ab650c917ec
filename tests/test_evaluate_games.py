"""Pixel-wise insertion / deletion and heatmap masking: reference loops, known orderings, hygiene, bad input."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from inferml_course import evaluate as ev
from inferml_course._core.images import gaussian_blur
from inferml_course.evaluate._common import substrate_images

from _evaluate_models import region_setup
from _explain_models import images, small_cnn
from _hygiene import assert_same, snapshot


# ------------------------------------------------------------------ a naive per-step reference loop
def naive_curves(model, x, heat, steps, substrate_img, output="probability"):
    """One image and one step at a time, pixel order from Python's sort: the definition, literally."""
    n, c, h, w = x.shape
    ins, dele = [], []
    with torch.no_grad():
        for i in range(n):
            logits = model(x[i:i + 1])
            t = int(logits.argmax(1))
            values = heat[i].flatten().tolist()
            order = sorted(range(h * w), key=lambda p: (-values[p], p))
            row_i, row_d = [], []
            for k in range(steps + 1):
                count = round(k * h * w / steps)
                moved = torch.zeros(h * w, dtype=torch.bool)
                moved[order[:count]] = True
                for game, row in (("insertion", row_i), ("deletion", row_d)):
                    keep = moved if game == "insertion" else ~moved
                    img = torch.where(keep.view(1, h, w), x[i], substrate_img[i])
                    z = model(img[None])
                    s = torch.softmax(z, 1)[0, t] if output == "probability" else z[0, t]
                    row.append(float(s))
            ins.append(row_i)
            dele.append(row_d)
    return torch.tensor(ins, dtype=torch.float64), torch.tensor(dele, dtype=torch.float64)


@pytest.mark.parametrize("substrate", ["blur", "mean", "black"])
@pytest.mark.parametrize("steps", [1, 5, 7])
def test_batched_games_equal_the_naive_loop(substrate, steps):
    model, x = small_cnn(), images(n=3, h=8, w=10)
    heat = torch.randn(3, 8, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    heat[0, :2] = 0.25  # ties: broken in raster order
    sub = substrate_images(model, x, substrate)
    ref_i, ref_d = naive_curves(model, x, heat, steps, sub)
    res = ev.insertion_deletion(model, x, heat, steps=steps, substrate=substrate, batch_size=7)
    assert torch.allclose(res.insertion["map"].double(), ref_i, atol=1e-9)
    assert torch.allclose(res.deletion["map"].double(), ref_d, atol=1e-9)
    assert torch.allclose(res.fractions, torch.tensor([round(k * 80 / steps) / 80 for k in range(steps + 1)],
                                                      dtype=torch.float64))


def test_logit_output_and_single_game_helpers():
    model, x = small_cnn(), images(n=2, h=8, w=8)
    heat = torch.rand(2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sub = substrate_images(model, x, "mean")
    ref_i, ref_d = naive_curves(model, x, heat, 4, sub, output="logit")
    assert torch.allclose(ev.insertion_curve(model, x, heat, steps=4, substrate="mean", output="logit").double(),
                          ref_i, atol=1e-9)
    assert torch.allclose(ev.deletion_curve(model, x, heat, steps=4, substrate="mean", output="logit").double(),
                          ref_d, atol=1e-9)


def test_several_maps_share_end_points_and_batch_size_does_not_matter():
    model, x = small_cnn(), images(n=3, h=8, w=8)
    g = torch.Generator().manual_seed(1)
    maps = {"a": torch.rand(3, 8, 8, generator=g, dtype=torch.float64),
            "b": torch.rand(3, 8, 8, generator=g, dtype=torch.float64)}
    big = ev.insertion_deletion(model, x, maps, steps=6, batch_size=10_000)
    small = ev.insertion_deletion(model, x, maps, steps=6, batch_size=1)
    one = ev.insertion_deletion(model, x, maps["b"], steps=6)
    for game in ("insertion", "deletion"):
        for name in maps:
            assert torch.allclose(getattr(big, game)[name], getattr(small, game)[name], atol=1e-12)
        assert torch.allclose(getattr(big, game)["b"], getattr(one, game)["map"], atol=1e-12)
    # end points: insertion starts where deletion ends (the substrate) and ends at the image
    assert torch.equal(big.insertion["a"][:, 0], big.deletion["b"][:, -1])
    assert torch.equal(big.insertion["a"][:, -1], big.deletion["a"][:, 0])


def test_perfect_inverted_and_random_maps_are_ordered():
    model, x, perfect, _ = region_setup(n=6, h=8, w=8)
    g = torch.Generator().manual_seed(5)
    maps = {"perfect": perfect, "inverted": -perfect, "random": torch.rand(perfect.shape, generator=g,
                                                                            dtype=perfect.dtype)}
    res = ev.insertion_deletion(model, x, maps, target=0, steps=16, substrate=0.5, output="logit")
    ins = {k: float(res.insertion_auc(k).mean()) for k in maps}
    dele = {k: float(res.deletion_auc(k).mean()) for k in maps}
    assert ins["perfect"] > ins["random"] > ins["inverted"]  # insertion: higher is better
    assert dele["perfect"] < dele["random"] < dele["inverted"]  # deletion: lower is better
    summary = res.summary()
    assert summary["perfect"]["insertion_auc"] == pytest.approx(ins["perfect"])
    table = res.table()
    assert "higher is better" in table and "lower is better" in table


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(2, 16))
def test_property_sorted_contributions_are_optimal_for_an_additive_model(seed, steps):
    """For an additive logit, deleting the largest contributions first minimises the deletion AUC and
    inserting them first maximises the insertion AUC, over any other ranking (here random ones)."""
    model, x, perfect, _ = region_setup(n=2, h=6, w=6, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    others = {f"r{k}": torch.rand(perfect.shape, generator=g, dtype=perfect.dtype) for k in range(3)}
    res = ev.insertion_deletion(model, x, {"perfect": perfect, **others}, target=0, steps=steps, substrate=0.5,
                                output="logit")
    for name in others:
        assert torch.all(res.deletion_auc("perfect") <= res.deletion_auc(name) + 1e-9)
        assert torch.all(res.insertion_auc("perfect") >= res.insertion_auc(name) - 1e-9)


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=12))
def test_property_auc_is_the_trapezoid_and_bounded(values):
    y = torch.tensor([values], dtype=torch.float64)
    a = float(ev.auc(y)[0])
    n = len(values) - 1
    expected = sum((values[i] + values[i + 1]) / 2 for i in range(n)) / n
    assert a == pytest.approx(expected, abs=1e-9)
    assert min(values) - 1e-9 <= a <= max(values) + 1e-9


def test_pixel_ranks_and_step_counts():
    m = torch.tensor([[[0.5, 2.0], [0.5, -1.0]]])
    assert ev.pixel_ranks(m).tolist() == [[1, 0, 2, 3]]  # ties (0.5, 0.5) in raster order
    assert ev.step_counts(10, 4).tolist() == [0, 2, 5, 8, 10]  # round half to even, as Python's round
    assert ev.step_counts(1024, 64)[1] == 16


def test_blur_substrate_is_scipys_gaussian_filter():
    """The one Gaussian blur of the package equals scipy.ndimage.gaussian_filter per image and channel
    (truncate 4, mode "reflect"), keeps constants, leaves sigma 0 alone and refuses bad sigmas."""
    from scipy.ndimage import gaussian_filter

    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    for sigma in (0.7, 2.0):
        y = gaussian_blur(x, sigma)
        ref = torch.from_numpy(gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="reflect"))
        assert torch.allclose(y, ref, atol=1e-12)
    per_image = gaussian_blur(x, torch.tensor([0.0, 1.5], dtype=torch.float64))
    assert torch.equal(per_image[0], x[0])
    assert torch.allclose(per_image[1], gaussian_blur(x[1:], 1.5), atol=1e-12)
    assert torch.allclose(gaussian_blur(torch.full_like(x, 0.3), 2.0), torch.full_like(x, 0.3))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(x, -1.0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gaussian_blur(x[0], 1.0)
    with pytest.raises(ValueError, match="blur_sigma"):
        ev.substrate_images(small_cnn(dtype=torch.float64), x, "blur", blur_sigma=float("nan"))


def test_game_optimized_map_wins_deletion_and_leaves_the_model_alone():
    model = small_cnn(dtype=torch.float32)
    x = images(n=3, h=12, w=12, dtype=torch.float32)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    before = snapshot(model)
    adv = ev.game_optimized_map(model, x, steps=8, substrate="mean")
    assert_same(before, snapshot(model))
    assert adv.shape == (3, 12, 12)
    assert sorted(adv.unique().tolist()) == list(range(1, 9))  # every pixel moved at exactly one step
    g = torch.Generator().manual_seed(0)
    rand = torch.rand(3, 12, 12, generator=g)
    res = ev.insertion_deletion(model, x, {"adv": adv, "random": rand}, steps=8, substrate="mean")
    assert float(res.deletion_auc("adv").mean()) < float(res.deletion_auc("random").mean())


# ------------------------------------------------------------------------------------ heatmap masking
def test_average_drop_and_increase_by_hand():
    full = torch.tensor([0.8, 0.5, 0.4])
    masked = torch.tensor([0.4, 0.6, 0.4])
    assert ev.average_drop(full, masked) == pytest.approx(100 * (0.5 + 0 + 0) / 3)
    assert ev.increase_in_confidence(full, masked) == pytest.approx(100 / 3)
    assert ev.expected_score(masked) == pytest.approx(float(masked.double().mean()))
    assert ev.win_percentage(torch.tensor([0.1, 0.5]), torch.tensor([0.2, 0.5])) == 50.0
    with pytest.raises(ValueError, match="positive"):
        ev.average_drop(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="same shape"):
        ev.average_drop(torch.tensor([0.5, 1.0]), torch.tensor([0.5]))


def test_masking_matches_manual_computation_and_rewards_the_whole_image():
    model, x = small_cnn(), images(n=4, h=8, w=8)
    heat = torch.rand(4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    res = ev.heatmap_masking(model, x, {"map": heat, "whole": torch.ones(4, 8, 8, dtype=torch.float64)},
                             substrate="mean")
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
        t = p.argmax(1)
        mask = heat / heat.flatten(1).amax(1).view(-1, 1, 1)
        sub = substrate_images(model, x, "mean")
        pm = torch.softmax(model(sub + mask[:, None] * (x - sub)), 1)
    assert torch.allclose(res.full, p.gather(1, t[:, None])[:, 0])
    assert torch.allclose(res.masked["map"], pm.gather(1, t[:, None])[:, 0], atol=1e-12)
    assert torch.equal(res.predicted["map"], pm.argmax(1))
    summary = res.summary()
    assert summary["whole"]["average_drop"] == pytest.approx(0.0, abs=1e-9)  # the largest map: no drop at all
    assert summary["whole"]["masked_accuracy"] == 1.0
    assert torch.allclose(ev.masked_images(model, x, heat, substrate="mean"), sub + mask[:, None] * (x - sub))
    assert "lower is better" in res.table()


def test_masking_orders_perfect_random_inverted():
    model, x, perfect, _ = region_setup(n=6)
    g = torch.Generator().manual_seed(1)
    maps = {"perfect": perfect, "random": torch.rand(perfect.shape, generator=g, dtype=perfect.dtype),
            "inverted": -perfect}
    res = ev.heatmap_masking(model, x, maps, target=0, substrate=0.5, scaling="minmax").summary()
    assert res["perfect"]["expected_score"] > res["random"]["expected_score"] > res["inverted"]["expected_score"]
    assert res["perfect"]["average_drop"] < res["random"]["average_drop"] < res["inverted"]["average_drop"]


def test_to_mask_modes():
    m = torch.tensor([[[-1.0, 0.0], [1.0, 3.0]]])
    assert torch.allclose(ev.to_mask(m, "minmax"), torch.tensor([[[0.0, 0.25], [0.5, 1.0]]]))
    assert torch.allclose(ev.to_mask(m, "max"), torch.tensor([[[0.0, 0.0], [1 / 3, 1.0]]]))
    assert torch.equal(ev.to_mask(torch.zeros(1, 2, 2), "max"), torch.zeros(1, 2, 2))
    assert torch.equal(ev.to_mask(torch.full((1, 2, 2), 0.4), "minmax"), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        ev.to_mask(m, "none")
    with pytest.raises(ValueError, match="scaling"):
        ev.to_mask(m, "softmax")


# ------------------------------------------------------------------------------ hygiene and bad input
@pytest.mark.parametrize("call", [
    lambda m, x, h: ev.insertion_deletion(m, x, h, steps=3),
    lambda m, x, h: ev.heatmap_masking(m, x, h),
    lambda m, x, h: ev.structure_curves(m, x, h, thresholds=(0.0, 0.5)),
])
def test_hygiene_model_untouched(call):
    model, x = small_cnn(), images(n=2, h=8, w=8)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    model.features.requires_grad_(False)
    before = snapshot(model)
    call(model, x, torch.rand(2, 8, 8, dtype=torch.float64))
    assert_same(before, snapshot(model))


class Exploding(torch.nn.Module):
    """Works for the first ``ok`` forward calls, then raises (an error in the middle of a game)."""

    def __init__(self, inner, ok):
        super().__init__()
        self.inner, self.ok, self.calls = inner, ok, 0

    def forward(self, x):
        self.calls += 1
        if self.calls > self.ok:
            raise RuntimeError("boom")
        return self.inner(x)


@pytest.mark.parametrize("fn", ["insertion_deletion", "game_optimized_map"])
def test_hygiene_after_an_exception(fn):
    model = Exploding(small_cnn(), ok=2)
    x = images(n=2, h=8, w=8)
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        if fn == "insertion_deletion":
            ev.insertion_deletion(model, x, torch.rand(2, 8, 8, dtype=torch.float64), steps=4, batch_size=2)
        else:
            ev.game_optimized_map(model, x, steps=4)
    assert_same(before, snapshot(model))


def test_training_mode_is_kept_and_warned_about():
    model, x = small_cnn(), images(n=2, h=8, w=8)
    model.train()
    with pytest.warns(UserWarning, match="training mode"):
        ev.heatmap_masking(model, x, torch.rand(2, 8, 8, dtype=torch.float64))
    assert model.training


@pytest.mark.parametrize("kwargs, error, match", [
    ({"maps": torch.rand(2, 8, 9)}, ValueError, "maps must have shape"),
    ({"maps": torch.rand(3, 8, 8)}, ValueError, "maps must have shape"),
    ({"maps": torch.rand(2, 1, 8, 8)}, ValueError, "maps must have shape"),
    ({"maps": torch.full((2, 8, 8), float("nan"))}, ValueError, "NaN"),
    ({"maps": torch.ones(2, 8, 8, dtype=torch.long)}, TypeError, "floating"),
    ({"maps": [[0.0]]}, TypeError, "maps"),
    ({"steps": 0}, ValueError, "steps"),
    ({"substrate": "white"}, ValueError, "substrate"),
    ({"output": "softmax"}, ValueError, "output"),
    ({"target": 7}, ValueError, "target out of range"),
    ({"target": 1.5}, TypeError, "target"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"games": ("insertion", "flipping")}, ValueError, "games"),
    ({"x": torch.rand(0, 3, 8, 8)}, ValueError, "empty"),
    ({"x": torch.rand(2, 8, 8)}, ValueError, r"x must (have|be a batch of) shape"),
])
def test_bad_input_insertion_deletion(kwargs, error, match):
    model = small_cnn(dtype=torch.float32)
    args = {"x": torch.rand(2, 3, 8, 8), "maps": torch.rand(2, 8, 8)}
    args.update(kwargs)
    x, maps = args.pop("x"), args.pop("maps")
    with pytest.raises(error, match=match):
        ev.insertion_deletion(model, x, maps, **args)


def test_bad_input_masking_and_curves():
    model = small_cnn(dtype=torch.float32)
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="maps"):
        ev.heatmap_masking(model, x, torch.rand(2, 8, 7))
    with pytest.raises(ValueError, match="scaling"):
        ev.heatmap_masking(model, x, torch.rand(2, 8, 8), scaling="zscore")
    with pytest.raises(TypeError, match="insertion_deletion"):
        ev.insertion_curve(model, x, {"a": torch.rand(2, 8, 8)})
    with pytest.raises(ValueError, match="steps"):
        ev.game_optimized_map(model, x, steps=65)
    with pytest.raises(ValueError, match="game"):
        ev.game_optimized_map(model, x, game="pointing")
    with pytest.raises(ValueError, match="curves"):
        ev.auc(torch.rand(3))
