"""The closed-form per-sample gradients (fisher.closed_form) equal torch.func's on every layer kind
they claim, on torchvision families with in-place ReLUs and residual additions, for every target
mode; where they do not apply, ``method="auto"`` falls back to vmap and ``"closed_form"`` refuses;
the model is untouched either way (also when its forward raises)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from inferml_course import fisher
from inferml_course.fisher.closed_form import NotExact
from inferml_course.models import SmallCNN

from _hygiene import assert_same, snapshot
from _torchvision_models import build, images


def _cnn():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=4).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


class Conv1dNet(nn.Module):
    """Conv1d with stride, dilation, groups, "same" and reflect padding; GroupNorm; LayerNorm."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(2, 4, 3, stride=2, padding=1, dilation=1)
        self.b = nn.Conv1d(4, 4, 3, padding="same", dilation=2, groups=2, padding_mode="reflect")
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.gn(self.b(torch.relu(self.a(x)))))
        return self.fc(self.ln(h.mean(2)))


class TokenNet(nn.Module):
    """A Linear applied to a token sequence (N, T, D) and a LayerNorm over the tokens."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 6)
        self.ln = nn.LayerNorm(6)
        self.head = nn.Linear(6, 4)

    def forward(self, x):  # x (N, T, 3)
        return self.head(self.ln(torch.tanh(self.embed(x))).mean(1))


class ConvStrides(nn.Module):
    def __init__(self, stride, padding, dilation, groups, kernel, mode):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                              padding_mode=mode)
        self.bn = nn.BatchNorm2d(4).eval()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def _inputs(name, n=5):
    g = torch.Generator().manual_seed(1)
    shapes = {"cnn": (n, 3, 16, 16), "conv1d": (n, 2, 11), "tokens": (n, 7, 3)}
    return torch.rand(*shapes[name], generator=g)


MODELS = {"cnn": _cnn, "conv1d": lambda: torch.manual_seed(0) and Conv1dNet().eval(),
          "tokens": lambda: torch.manual_seed(0) and TokenNet().eval()}


def _close(a, b, scale=None):
    scale = float(b.abs().max()) if scale is None else scale
    assert torch.allclose(a, b, atol=2e-5 * max(scale, 1.0), rtol=1e-4), float((a - b).abs().max())


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("target", [None, "sampled", 1, "tensor"])
def test_closed_form_equals_vmap(name, target):
    model, x = MODELS[name](), _inputs(name)
    if target == "tensor":
        target = torch.tensor([0, 2, 1, 1, 0])
    a = fisher.per_sample_grads(model, x, target=target, method="closed_form", flatten=False, batch_size=2)
    b = fisher.per_sample_grads(model, x, target=target, method="vmap", flatten=False)
    assert list(a) == list(b) == [n for n, _ in model.named_parameters()]
    for key in a:
        assert a[key].shape == b[key].shape
        _close(a[key], b[key])


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "densenet121", "mobilenet_v3_small", "convnext_tiny"])
def test_torchvision_in_place_families(name):
    """In-place ReLUs and ``out += identity`` after a recorded layer do not change its gradients."""
    model, x = build(name), images(3, name=name)
    before = snapshot(model)
    a = fisher.per_sample_grads(model, x, method="auto", batch_size=2)  # the second chunk reuses the copy mode
    b = fisher.per_sample_grads(model, x, method="vmap")
    _close(a, b)
    assert_same(before, snapshot(model))


def test_transformer_falls_back_to_vmap():
    """ViT's class token, position embedding and attention are not closed-form layers."""
    model, x = build("vit"), images(2, name="vit")
    with pytest.raises(NotExact, match="class_token"):
        fisher.per_sample_grads(model, x, method="closed_form")
    _close(fisher.per_sample_grads(model, x), fisher.per_sample_grads(model, x, method="vmap"))
    # its Linear / LayerNorm parameters alone are closed-form layers
    head = ["heads.head.weight", "heads.head.bias", "encoder.ln.weight", "encoder.ln.bias"]
    _close(fisher.per_sample_grads(model, x, params=head, method="closed_form"),
           fisher.per_sample_grads(model, x, params=head, method="vmap"))


def test_gradient_norms_and_fisher_agree():
    model, x = _cnn(), _inputs("cnn", 6)
    _close(fisher.gradient_norms(model, x, method="closed_form"), fisher.gradient_norms(model, x, method="vmap"))
    a = fisher.fisher_information(model, x, n_samples=2, method="closed_form", top_k=3)
    b = fisher.fisher_information(model, x, n_samples=2, method="vmap", top_k=3)
    assert abs(a.trace - b.trace) <= 1e-4 * b.trace
    _close(a.eigenvalues, b.eigenvalues)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 3)
        self.c = nn.Linear(4, 4)
        self.c.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.relu(self.c(torch.relu(self.a(x)))))


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.b(self.a(torch.relu(self.a(x))))


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)) + x @ self.a.weight.t())


class Loose(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([1.5, 0.5, 1.0, 2.0]))
        self.b = nn.Linear(4, 3)

    def forward(self, x):
        return self.b(x * self.scale)


class ChangedInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.a(x))
        z = self.b(h)
        h.mul_(2.0)  # the recorded input of ``b`` changes after ``b`` ran
        return z + h[:, :3]


class NoStats(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(4, track_running_stats=False)
        self.b = nn.Linear(4, 3)
        self.num_classes = 3

    def forward(self, x):
        return self.b(self.bn(x))


class Custom(nn.Linear):
    def forward(self, x):
        return super().forward(x) * 2.0


REFUSED = {"tied weights": (Tied, "shared"), "called twice": (Twice, "called 2 times"),
           "used functionally": (Functional, "enters 2 operations"), "loose parameter": (Loose, "scale"),
           "input changed in place": (ChangedInput, "modified in place"), "no running statistics": (NoStats,
                                                                                                  "running"),
           "overridden forward": (lambda: nn.Sequential(Custom(4, 3)), "overrides the forward")}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refusals_and_auto_fallback(case):
    factory, message = REFUSED[case]
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    before = snapshot(model)
    with pytest.raises(NotExact, match=message):
        fisher.per_sample_grads(model, x, method="closed_form")
    assert_same(before, snapshot(model))
    if case in ("no running statistics", "input changed in place"):
        return  # vmap cannot run a batch norm without statistics on one sample, nor autograd this model
    auto = fisher.per_sample_grads(model, x)
    _close(auto, fisher.per_sample_grads(model, x, method="vmap"))
    assert_same(before, snapshot(model))


def test_parameters_that_do_not_reach_the_loss_get_zero_gradients():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.unused = nn.Linear(4, 3), nn.Linear(4, 3)

        def forward(self, x):
            return self.a(x)

    torch.manual_seed(0)
    model, x = Branch().eval(), torch.randn(3, 4)
    a = fisher.per_sample_grads(model, x, method="closed_form", flatten=False)
    assert torch.equal(a["unused.weight"], torch.zeros(3, 3, 4))
    _close(a["a.weight"], fisher.per_sample_grads(model, x, method="vmap", flatten=False)["a.weight"])


def test_hygiene_training_mode_and_a_raising_forward():
    model = _cnn().train()
    model.classifier.fc2.weight.grad = torch.ones_like(model.classifier.fc2.weight)
    model.features.block1.conv1.weight.requires_grad_(False)
    x = _inputs("cnn", 3)
    before = snapshot(model)
    with pytest.warns(UserWarning):
        fisher.per_sample_grads(model, x, method="closed_form")
    assert_same(before, snapshot(model))

    class Raising(nn.Module):
        def forward(self, h):
            raise RuntimeError("boom")

    model.classifier.relu = Raising()
    model.eval()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        fisher.per_sample_grads(model, x, method="closed_form")
    assert_same(before, snapshot(model))


def test_bad_method():
    model, x = _cnn(), _inputs("cnn", 2)
    with pytest.raises(ValueError, match="method"):
        fisher.per_sample_grads(model, x, method="opacus")


@settings(max_examples=25)
@given(stride=st.integers(1, 3), padding=st.sampled_from([0, 1, 2, "same", "valid"]), dilation=st.integers(1, 2),
       groups=st.sampled_from([1, 2, 4]), kernel=st.sampled_from([1, 2, 3, (3, 1)]),
       mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
def test_conv2d_configurations(stride, padding, dilation, groups, kernel, mode):
    if padding == "same" and stride != 1:
        return  # torch refuses padding="same" with strides
    torch.manual_seed(0)
    model = ConvStrides(stride, padding, dilation, groups, kernel, mode).eval()
    x = torch.rand(3, 4, 9, 9, generator=torch.Generator().manual_seed(3))
    _close(fisher.per_sample_grads(model, x, method="closed_form"), fisher.per_sample_grads(model, x, method="vmap"))
