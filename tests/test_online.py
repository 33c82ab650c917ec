"""The online extras (issue 14, item 5): offline they refuse at once; with random weights the lessons'
"On an ImageNet model" code paths (paradigms, GradTrust against MSP, VOICE on a CNN and a transformer)
run on the same wrappers, found by the model adapter without any keyword."""
import time

import pytest
import torch

from inferml_course import explain, online
from inferml_course._core import adapter
from inferml_course.uncertainty import scores, voice

from _hygiene import assert_same, snapshot


@pytest.fixture(scope="module")
def photos():
    return online.photos(("chelsea", "coffee"), size=64)


def test_photos_are_bundled_square_and_in_range():
    x = online.photos(size=32)
    assert x.shape == (len(online.PHOTOS), 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert torch.equal(online.photos("rocket", size=32)[0], x[online.PHOTOS.index("rocket")])
    with pytest.raises(ValueError, match="names"):
        online.photos(("chelsea", "nonexistent"))
    with pytest.raises(ValueError, match="size"):
        online.photos(size=0)
    with pytest.raises(ValueError, match="at least one"):
        online.photos(())


def test_pretrained_offline_fails_fast_with_a_message(monkeypatch):
    monkeypatch.setattr(online, "can_download", lambda **_: False)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="cannot be reached.*pretrained=False"):
        online.imagenet_model("resnet18", pretrained=True)
    assert time.monotonic() - start < 5
    with pytest.raises(ValueError, match="arch"):
        online.imagenet_model("alexnet", pretrained=False)


def test_can_download_never_hangs():
    start = time.monotonic()
    assert online.can_download(host="nonexistent.invalid", timeout=1.0) is False
    assert time.monotonic() - start < 3.0


@pytest.mark.parametrize("arch, layer", [("resnet18", "net.layer4"), ("swin_t", "net.features.7.1.norm1")])
def test_lesson_code_paths_with_random_weights(photos, arch, layer):
    model = online.imagenet_model(arch, pretrained=False)
    assert len(model.classes) == 1000 and model.training is False
    assert adapter.resolve_layer(model, None, photos) is model.get_submodule(layer)
    assert torch.allclose(adapter.resolve_normalize(model), torch.tensor([0.485, 0.456, 0.406]))
    before = snapshot(model)
    # lesson 03: the four paradigms with the top-2 classes as P and Q
    out = explain.explanatory_paradigms(model, photos)
    assert all(out[k].shape == (2, 64, 64) for k in explain.PARADIGMS)
    top2 = out["probs"].topk(2, 1).indices
    assert torch.equal(out["P"], top2[:, 0]) and torch.equal(out["Q"], top2[:, 1])
    # lesson 06: GradTrust against MSP
    trust, msp = scores.uncertainty("gradtrust", model, photos), scores.uncertainty("msp", model, photos)
    assert trust.shape == msp.shape == (2,) and torch.isfinite(trust).all()
    # lesson 07: VOICE (on Swin-T in the next test, which also draws its panel: one run of 999 contrasts there)
    if arch != "swin_t":
        result = voice.voice(model, photos)
        assert result.uncertainty.shape == (2, 64, 64) and torch.isfinite(result.uncertainty).all()
        assert result.contrast_maps.shape == (2, 999, 64, 64)
    assert_same(before, snapshot(model))


def test_lesson_02_and_07_code_paths_with_random_weights(photos):
    """Lesson 02's method grid on ResNet-50 (the ImageNet mean as IG's baseline, found in the wrapper) and
    lesson 07's VOICE panel on a channels-last Swin-T, offline with random weights."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from inferml_course.explain import plots as xplots

    model = online.imagenet_model("resnet50", pretrained=False)
    maps = {name: explain.explain(name, model, photos, **opts) for name, opts in
            {"integrated_gradients": {"steps": 2, "baseline": "mean"}, "occlusion": {"window": 32, "stride": 32},
             "grad_cam": {}}.items()}
    assert all(m.shape == (2, 64, 64) and torch.isfinite(m).all() for m in maps.values())
    xplots.show_method_grid(photos, maps, row_titles=["a", "b"], signed={m: m in explain.SIGNED for m in maps})
    swin = online.imagenet_model("swin_t", pretrained=False)
    before = snapshot(swin)
    result = voice.voice(swin, photos)
    assert result.uncertainty.shape == (2, 64, 64) and torch.isfinite(result.uncertainty).all()
    assert result.contrast_maps.shape == (2, 999, 64, 64)
    assert_same(before, snapshot(swin))
    voice.voice_panel(photos, result, range(2), class_names=swin.classes, suptitle="VOICE on swin_t")
    plt.close("all")
