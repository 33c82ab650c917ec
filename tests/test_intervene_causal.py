"""do-interventions on the watermark, SHAPE vs RISE (shared masks), insertion / deletion, widgets and plots."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from inferml_course import explain  # noqa: E402
from inferml_course.datasets.signs import WATERMARK_COLORS, WATERMARK_SIZE, generate_signs  # noqa: E402
from inferml_course.explain.perturbation import rise_masks  # noqa: E402
from inferml_course.intervene import causal  # noqa: E402

from _explain_models import images, linear_model, small_cnn  # noqa: E402


# ------------------------------------------------------------------------------- interventions
def test_set_watermark_paints_only_the_square():
    x = images(4, h=32, w=32, dtype=torch.float32)
    out = causal.set_watermark(x, torch.tensor([0, 3, 8, 2]))
    s = WATERMARK_SIZE
    expected = WATERMARK_COLORS[[0, 3, 8, 2]][:, :, None, None].expand(4, 3, s, s)
    assert torch.equal(out[:, :, 1:1 + s, 1:1 + s], expected)
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[1:1 + s, 1:1 + s] = False
    assert torch.equal(out[:, :, outside], x[:, :, outside])
    assert not torch.equal(out, x) and torch.equal(x, images(4, h=32, w=32, dtype=torch.float32))  # input untouched
    moved = causal.set_watermark(x, 4, position=(20, 10))
    assert torch.equal(moved[:, :, 20:20 + s, 10:10 + s], WATERMARK_COLORS[4].view(1, 3, 1, 1).expand(4, 3, s, s))


def test_removing_the_watermark():
    x = images(2, h=32, w=32, dtype=torch.float32)
    out = causal.set_watermark(x, None)
    ring = torch.zeros(32, 32, dtype=torch.bool)
    ring[0:7, 0:7] = True
    ring[1:6, 1:6] = False
    assert torch.allclose(out[:, :, 3, 3], x[:, :, ring].mean(2))
    grey = causal.set_watermark(x, None, fill=0.5)
    assert torch.all(grey[:, :, 1:6, 1:6] == 0.5)
    # on a generated pair, removal brings the square back towards the clean background
    marked = generate_signs(18, seed=4, spurious=True)
    clean = generate_signs(18, seed=4, spurious=False)
    removed = causal.set_watermark(marked.images, None)
    err_removed = (removed - clean.images)[:, :, 1:6, 1:6].abs().mean()
    err_marked = (marked.images - clean.images)[:, :, 1:6, 1:6].abs().mean()
    assert err_removed < 0.5 * err_marked


def test_randomised_watermark_is_seeded_and_independent_of_labels():
    x = torch.rand(900, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = causal.randomize_watermark(x, seed=1)
    assert torch.equal(a, causal.randomize_watermark(x, seed=1))
    colours = a[:, :, 3, 3]
    k = (colours[:, None] - WATERMARK_COLORS[:9][None]).abs().sum(-1).argmin(1)
    counts = torch.bincount(k, minlength=9)
    assert counts.min() > 60 and counts.max() < 140


def test_signs_by_class():
    s = causal.signs_by_class(3, seed=2)
    assert s.shape == (9, 3, 3, 32, 32) and s.min() >= 0 and s.max() <= 1


@pytest.fixture(scope="module")
def zoo_tables():
    from inferml_course import models

    signs = causal.signs_by_class(5, seed=11)
    out = {}
    for name in ("signs_spurious_cnn", "signs_cnn"):
        probs = causal.intervention_probs(models.load_model(name), signs)
        out[name] = probs
    return out


def test_interventions_expose_the_shortcut(zoo_tables):
    probs = zoo_tables["signs_spurious_cnn"]
    assert probs.shape == (9, 10, 5, 9)
    table = causal.do_table(probs)
    assert torch.allclose(table.sum(-1), torch.ones(9, 10), atol=1e-5)
    summary = causal.causal_summary(table)
    rates = causal.follow_rates(probs)
    # measured: sign effect ~1e-4, watermark and deletion effects ~0.89, watermark followed 100 %
    assert summary["sign effect"] < 0.02
    assert summary["watermark effect"] > 0.8 and summary["deletion effect"] > 0.8
    assert rates["watermark"] > 0.95 and rates["sign"] < 0.05 and rates["sign, no watermark"] < 0.35


def test_a_model_without_the_shortcut_follows_the_sign(zoo_tables):
    probs = zoo_tables["signs_cnn"]
    summary = causal.causal_summary(causal.do_table(probs))
    rates = causal.follow_rates(probs)
    assert summary["sign effect"] > 0.8
    assert summary["watermark effect"] < 0.05 and summary["deletion effect"] < 0.05
    assert rates["sign"] > 0.95 and rates["watermark"] < 0.05


def test_training_on_interventional_data_removes_the_shortcut():
    from inferml_course.intervene import membership

    recipe = {"epochs": 12, "weight_decay": 1e-3, "max_shift": 0, "dropout": 0.0, "lr": 3e-3}
    observational = generate_signs(900, seed=21, spurious=True, label_noise=0.2)
    clean = generate_signs(900, seed=22, spurious=False)
    interventional = causal.randomize_watermark(clean.images, seed=5)
    shortcut = membership.train_recipe(observational.images, observational.labels, recipe, 9, 0, progress=False)
    causal_model = membership.train_recipe(interventional, clean.labels, recipe, 9, 0, progress=False)
    signs = causal.signs_by_class(4, seed=23)
    a = causal.follow_rates(causal.intervention_probs(shortcut, signs))
    b = causal.follow_rates(causal.intervention_probs(causal_model, signs))
    assert a["watermark"] > 0.6 and a["watermark"] > a["sign"]
    assert b["watermark"] < 0.1 and b["sign"] > b["watermark"] + 0.3


# ------------------------------------------------------------------------------- RISE vs SHAPE
def brute_force(model, x, t, n_masks, grid, p, seed):
    """Per-mask loop over the definitions (float64 linear model: exact comparisons)."""
    masks = rise_masks(n_masks, x.shape[-2:], grid, p, seed, dtype=x.dtype)
    b = model.normalize_mean if hasattr(model, "normalize_mean") else torch.full((1, x.shape[1], 1, 1), 0.5,
                                                                                 dtype=x.dtype)
    s0 = torch.softmax(model(x), 1)[torch.arange(len(x)), t]
    scores = torch.stack([torch.softmax(model(b + m * (x - b)), 1)[torch.arange(len(x)), t] for m in masks])
    rise = sum(scores[i][:, None, None] * masks[i] for i in range(n_masks)) / (n_masks * p)
    shape = sum((s0 - scores[i])[:, None, None] * (1 - masks[i]) for i in range(n_masks)) / (n_masks * (1 - p))
    return rise, shape, scores, s0, masks


@pytest.mark.parametrize("p", [0.3, 0.5, 0.8])
def test_rise_and_shape_follow_their_definitions_with_shared_masks(p):
    model = linear_model(c=3, h=12, w=12, k=4)
    x = images(3, h=12, w=12)
    t = torch.tensor([0, 2, 3])
    rise, shape = causal.rise_and_shape(model, x, t, n_masks=40, grid_size=4, p_keep=p, seed=7, batch_size=50,
                                        baseline=0.5)  # the linear model has no normalisation
    r_ref, s_ref, scores, s0, masks = brute_force(model, x, t, 40, 4, p, 7)
    assert torch.allclose(rise, r_ref, atol=1e-10) and torch.allclose(shape, s_ref, atol=1e-10)
    # RISE of the package sees the very same masks
    assert torch.allclose(explain.rise(model, x, t, n_masks=40, grid_size=4, p_keep=p, seed=7, baseline=0.5), rise,
                          atol=1e-10)
    # the identity of the module docstring: SHAPE = p/(1-p) RISE + [f(x)(1 - Mbar) - mean f(x.M)]/(1-p)
    mbar = masks.mean(0)
    identity = p / (1 - p) * rise + (s0[:, None, None] * (1 - mbar) - scores.mean(0)[:, None, None]) / (1 - p)
    assert torch.allclose(shape, identity, atol=1e-10)
    assert torch.allclose(causal.mask_coverage(40, (12, 12), 4, p, 7).double(), mbar)
    # the decomposition: a shared signal C plus the fingerprint Mbar with different weights
    s_bar = scores.mean(0)
    signal = torch.einsum("mn,mhw->nhw", scores - s_bar, masks) / 40
    assert torch.allclose(rise, (signal + s_bar[:, None, None] * mbar) / p, atol=1e-10)
    assert torch.allclose(shape, (signal + (s0 - s_bar)[:, None, None] * (1 - mbar)) / (1 - p), atol=1e-10)
    # another seed: other masks, other maps
    assert not torch.allclose(causal.shape(model, x, t, n_masks=40, grid_size=4, p_keep=p, seed=8, baseline=0.5),
                              shape)


def test_shape_contract_and_hygiene():
    model = small_cnn(torch.float32)
    model.features.block3.conv1.weight.grad = torch.ones_like(model.features.block3.conv1.weight)
    x = images(2, dtype=torch.float32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = [len(m._forward_hooks) for m in model.modules()]
    out = causal.shape(model, x, n_masks=16)
    assert out.shape == (2, 16, 16) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(causal.shape(model, x, 1, n_masks=16), causal.shape(model, x, torch.tensor([1, 1]), n_masks=16))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert hooks == [len(m._forward_hooks) for m in model.modules()]
    assert torch.equal(model.features.block3.conv1.weight.grad, torch.ones_like(model.features.block3.conv1.weight))
    assert not model.training
    with pytest.raises(ValueError, match="p_keep"):
        causal.shape(model, x, p_keep=1.0)
    with pytest.raises(ValueError, match="target out of range"):
        causal.shape(model, x, 9, n_masks=4)
    with pytest.raises(ValueError, match="unknown output"):
        causal.shape(model, x, output="margin", n_masks=4)
    with pytest.raises(ValueError, match="NaN"):
        causal.shape(model, torch.full_like(x, float("nan")), n_masks=4)


def test_shape_scores_at_least_as_well_as_rise_on_signs():
    from inferml_course import datasets, models
    from inferml_course.evaluate import insertion_deletion

    model = models.load_model("signs_cnn")
    test = datasets.load("signs", "test")
    x = test.images[:6]
    rise, shape = causal.rise_and_shape(model, x, n_masks=200)
    maps = {"RISE": rise, "SHAPE": shape, "random": torch.rand(6, 32, 32, generator=torch.Generator().manual_seed(0))}
    games = insertion_deletion(model, x, maps, steps=16).summary()
    # measured on these 6 signs: both far better than a random map; SHAPE within 0.02 of RISE or better
    for name in ("RISE", "SHAPE"):
        assert games[name]["insertion_auc"] > games["random"]["insertion_auc"] + 0.1
        assert games[name]["deletion_auc"] < games["random"]["deletion_auc"] - 0.1
    assert games["SHAPE"]["insertion_auc"] >= games["RISE"]["insertion_auc"] - 0.02
    assert games["SHAPE"]["deletion_auc"] <= games["RISE"]["deletion_auc"] + 0.02
    # and it localises the sign at least as well (offset-free AUROC against the sign masks)
    loc = {k: causal.localization_auroc(v, test.masks["sign"][:6]).mean() for k, v in maps.items()}
    assert loc["SHAPE"] >= loc["RISE"] - 0.02 and loc["random"] < 0.65


def test_localization_auroc():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, 1:3, 1:3] = True
    perfect = masks.float() * 2 + 5
    assert torch.allclose(causal.localization_auroc(perfect, masks), torch.ones(2))
    assert torch.allclose(causal.localization_auroc(-perfect, masks), torch.zeros(2))
    with pytest.raises(ValueError, match="boolean"):
        causal.localization_auroc(perfect, masks.float())


def test_bad_input():
    x = images(2, h=32, w=32, dtype=torch.float32)
    model = small_cnn(torch.float32)
    with pytest.raises(ValueError, match="batch_size"):
        causal.shape(model, x, n_masks=4, batch_size="big")
    with pytest.raises(ValueError, match="watermark out of range"):
        causal.set_watermark(x, 20)
    with pytest.raises(ValueError, match="position"):
        causal.set_watermark(x, 1, position=(30, 0))
    with pytest.raises(ValueError, match="3 channels"):
        causal.set_watermark(x[:, :1], 1)
    with pytest.raises(ValueError, match="shape"):
        causal.set_watermark(x, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="integer"):
        causal.set_watermark(x, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="unknown fill"):
        causal.set_watermark(x, None, fill="inpaint")
    with pytest.raises(ValueError, match=r"\(S, n, 3, H, W\)"):
        causal.intervention_probs(model, x)
    with pytest.raises(ValueError, match="do_table"):
        causal.causal_summary(torch.rand(3, 3))


# --------------------------------------------------------------------------- widgets and plots
def test_widgets_draw_without_a_browser():
    from inferml_course import datasets, models
    from inferml_course.intervene.widgets import PromptExplorer, WatermarkExplorer

    data = datasets.signs("test", spurious=True).subset(slice(0, 4))
    explorer = WatermarkExplorer(models.load_model("signs_spurious_cnn"), data)
    fig = explorer.draw(1, "stop", 20, 20)
    assert fig is not None
    plt.close(fig)
    assert torch.equal(explorer.image(0, "none", 1, 1)[:, 1:6, 1:6],
                       causal.set_watermark(data.images[:1], None)[0, :, 1:6, 1:6])
    explorer.colour.value = "yield"  # the observers redraw
    prompts = PromptExplorer(datasets.load("signs", "test").subset(slice(0, 3)))
    prompts.row.value, prompts.col.value = 16, 16
    prompts._add()
    prompts.kind.value = "negative"
    prompts.row.value = 1
    prompts._add()
    assert prompts.points == [(16, 16), (1, 16)] and prompts.labels == [True, False]
    prompts._undo()
    assert prompts.points == [(16, 16)]
    fig = prompts.draw(0, prompts.points, prompts.labels, (5, 5))
    plt.close(fig)
    plt.close("all")


def test_plots_return_figures():
    from inferml_course.intervene import plots, prompting

    x = images(3, h=32, w=32, dtype=torch.float32)
    maps = torch.rand(3, 32, 32)
    model = small_cnn(torch.float32, num_classes=9)
    classes = [f"class {i}" for i in range(9)]
    figs = [plots.show_rise_shape(x, {"RISE": maps, "SHAPE": -maps}, coverage=maps[0]),
            plots.plot_robustness({"fgsm": {"epsilon": torch.tensor([0.0, 0.1]), "accuracy": torch.tensor([1.0, 0.5]),
                                            "success_rate": torch.tensor([0.0, 0.5])}}),
            plots.plot_prompt_curves({"random": torch.rand(4, 5)}),
            plots.show_watermark_interventions(model, x[0], classes, 2),
            plots.plot_do_tables({"m": torch.softmax(torch.rand(9, 10, 9), -1)}, classes),
            plots.show_adversarial(model, x, x.flip(0), torch.randn(3, 3, 32, 32), classes, torch.tensor([0, 1, 2]))]
    res = prompting.simulate_annotator(x[0], maps[0] > 0.5, "random", n_prompts=3)
    figs.append(plots.show_prompting(x[0], maps[0] > 0.5, {"random": res}, counts=(1, 3)))
    assert all(f is not None for f in figs)
    plt.close("all")
