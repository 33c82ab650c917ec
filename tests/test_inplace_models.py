"""In-place operations (``ReLU(inplace=True)``, ``out += identity``) must not change any explanation:
a torchvision ResNet-18 and the same network rewritten without in-place operations give the same maps,
and FullGrad's decomposition stays complete (issue 14, item 2)."""
import copy
import types

import pytest
import torch
from torch import nn

from inferml_course import explain
from inferml_course.explain import gradients

from _hygiene import assert_same, snapshot

torchvision = pytest.importorskip("torchvision")
from torchvision.models.resnet import BasicBlock  # noqa: E402

K = 4


def _out_of_place_forward(block, x):
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))   # the block's own ReLU module (inplace=False here), so
    out = block.bn2(block.conv2(out))              # guided backprop and deconvnet see it as in the original
    return block.relu(out + identity)


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=K).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
        if isinstance(m, BasicBlock):
            m.forward = types.MethodType(_out_of_place_forward, m)
    return model, plain


def test_fullgrad_is_complete_on_an_in_place_resnet(pair):
    model, _ = pair
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    before = snapshot(model)
    inp, terms, t = gradients.fullgrad_terms(model, x, 0)
    total = inp.flatten(1).sum(1) + sum(term.flatten(1).sum(1) for term in terms)
    with torch.no_grad():
        logit = model(x)[:, 0]
    assert torch.allclose(total, logit, atol=1e-5 + 1e-4 * float(logit.abs().max()))
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("method", explain.METHODS)
def test_every_explainer_is_blind_to_in_place_operations(pair, method):
    model, plain = pair
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    options = {"baseline": 0.5} if method in ("occlusion", "rise", "lime", "kernel_shap") else {}
    if method in ("occlusion",):
        options.update(window=16, stride=16)
    if method in ("rise",):
        options.update(n_masks=16)
    if method in ("lime", "kernel_shap"):
        options.update(samples=16)
    if method in ("smoothgrad", "integrated_gradients", "blur_ig"):
        options.update(steps=4) if method != "smoothgrad" else options.update(samples=4)
    before = snapshot(model)
    a = explain.explain(method, model, x, target=1, **options)
    b = explain.explain(method, plain, x, target=1, **options)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max()) + 1e-9), method
    assert_same(before, snapshot(model))


def test_a_cam_layer_changed_in_place_afterwards_keeps_its_own_values(pair):
    """layer4.1.bn2 is followed by ``out += identity``: Grad-CAM must read the batch-norm output."""
    model, plain = pair
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    a = explain.grad_cam(model, x, target=0, layer="layer4.1.bn2")
    b = explain.grad_cam(plain, x, target=0, layer="layer4.1.bn2")
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


def test_ua_backprop_and_voice_are_blind_to_in_place_operations(pair):
    """UA-Backprop reads the batch-norm outputs that ``out += identity`` changes afterwards (its bias
    terms), VOICE a layer followed by in-place ReLUs; an ensemble of the model and a copy with other
    batch-norm statistics gives the same maps as the out-of-place rewrite of both."""
    from inferml_course.uncertainty import attribution, voice

    model, plain = pair
    other, other_plain = copy.deepcopy(model), copy.deepcopy(plain)
    with torch.no_grad():
        for a, b in zip(other.modules(), other_plain.modules()):
            if isinstance(a, nn.BatchNorm2d):
                a.running_mean.mul_(-1)
                b.running_mean.copy_(a.running_mean)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    before = snapshot(model)
    ours = attribution.ua_backprop_details([model, other], x, source="ensemble")
    ref = attribution.ua_backprop_details([plain, other_plain], x, source="ensemble")
    for measure in ours.maps:
        assert torch.allclose(ours.maps[measure], ref.maps[measure], rtol=1e-4, atol=1e-8), measure
    assert torch.allclose(voice.voice(model, x).uncertainty, voice.voice(plain, x).uncertainty, atol=1e-5)
    assert_same(before, snapshot(model))
