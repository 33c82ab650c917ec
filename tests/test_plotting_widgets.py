import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from inferml_course import plotting  # noqa: E402
from inferml_course.datasets import generate_signs  # noqa: E402
from inferml_course.models import SmallCNN  # noqa: E402

from conftest import require  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return generate_signs(12, seed=0)


def teardown_function():
    plt.close("all")


def test_show_images_titles_from_probabilities(data):
    probs = torch.softmax(torch.randn(12, 9), 1)
    fig = plotting.show_images(data.images, data.labels, data.classes, probs=probs, masks=data.masks["part"], ncols=6)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 12
    k = int(probs[0].argmax())
    assert titles[0].startswith(data.classes[k]) and ("✓" in titles[0] or "✗" in titles[0])


def test_probability_bars_and_predictions(data):
    probs = torch.softmax(torch.randn(4, 9), 1)
    fig = plotting.show_predictions(data.images[:4], probs, data.classes, data.labels[:4], top=3, ncols=2)
    bar_axes = [ax for ax in fig.axes if ax.get_xlabel() == "probability"]
    assert len(bar_axes) == 4 and all(len(ax.patches) == 3 for ax in bar_axes)


def test_heatmaps_signed_and_unsigned(data):
    maps = torch.randn(3, 32, 32)
    fig = plotting.show_heatmaps(data.images[:3], maps, titles=["a", "b", "c"])
    cmaps = {im.get_cmap().name for ax in fig.axes for im in ax.get_images()}
    assert "coolwarm" in cmaps
    fig = plotting.show_heatmaps(data.images[:3], maps.abs())
    assert "inferno" in {im.get_cmap().name for ax in fig.axes for im in ax.get_images()}


def test_curves_are_labelled():
    fig = plotting.plot_curves([1, 2, 3], {"a": [1, 2, 3], "b": torch.tensor([3.0, 2, 1])}, "severity", "accuracy", "t")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "severity" and ax.get_ylabel() == "accuracy" and len(ax.lines) == 2
    assert ax.get_legend() is not None


def test_severity_strip_and_rows(data):
    fig = plotting.severity_strip(data.images[0], {"fog": data.images[:5], "noise": data.images[5:10]})
    assert len(fig.axes) == 12
    fig = plotting.show_image_rows({"x": data.images[:3], "y": data.images[3:5]}, ncols=3)
    assert fig.axes[0].get_ylabel() == "x"


def test_corruption_explorer_updates(data):
    require("ipywidgets")
    from inferml_course.widgets import CorruptionExplorer

    model = SmallCNN(3, 9).eval()
    explorer = CorruptionExplorer(model, data)
    clean = explorer.predict("none", 1, 2)
    foggy = explorer.predict("fog", 5, 2)
    assert clean["probs"].shape == (9,) and abs(clean["probs"].sum() - 1) < 1e-5
    assert not torch.equal(clean["image"], foggy["image"])
    explorer.corruption.value = "fog"      # a control change redraws without error
    explorer.index.value = 5
    fig = explorer.draw("gaussian_noise", 3, 1)
    assert "severity 3" in fig.axes[0].get_title()
    assert not model.training
