"""Fisher information: closed forms on toys, per-sample gradients against a reference loop, hygiene."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from inferml_course import fisher
from inferml_course.models import SmallCNN

from conftest import passes


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = SmallCNN(3, 5, width=4, hidden=16).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def images():
    return torch.rand(7, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def linear_model(d=4, k=3, seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(d, k)
    model.num_classes = k
    return model


def reference_grads(model, x, labels):
    """One sample at a time with autograd: the slow, obviously correct reference."""
    rows = []
    for i in range(x.shape[0]):
        loss = F.cross_entropy(model(x[i:i + 1]), labels[i:i + 1])
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))]))
    return torch.stack(rows)


# ------------------------------------------------------------------ Bernoulli toy

@pytest.mark.parametrize("theta", [0.1, 0.3, 0.5, 0.85])
def test_bernoulli_monte_carlo_matches_closed_form(theta):
    mc = fisher.bernoulli_fisher_monte_carlo(theta, n=200_000, seed=3)
    closed = 1 / (theta * (1 - theta))
    assert mc["closed_form"] == pytest.approx(closed)
    for key in ("variance_of_score", "mean_squared_score", "negative_mean_curvature"):
        assert mc[key] == pytest.approx(closed, rel=0.03), key
    assert abs(mc["mean_score"]) < 0.05 * math.sqrt(closed)


def test_bernoulli_score_equals_autograd():
    theta = torch.tensor(0.37, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    (g,) = torch.autograd.grad(fisher.bernoulli_log_likelihood(theta, x).sum(), theta)
    assert torch.allclose(g, fisher.bernoulli_score(x, 0.37).sum())
    assert torch.allclose(fisher.bernoulli_fisher(torch.tensor([0.5])), torch.tensor([4.0], dtype=torch.float64))


def test_bernoulli_is_seeded():
    a = fisher.bernoulli_fisher_monte_carlo(0.2, n=1000, seed=5)
    b = fisher.bernoulli_fisher_monte_carlo(0.2, n=1000, seed=5)
    c = fisher.bernoulli_fisher_monte_carlo(0.2, n=1000, seed=6)
    assert a == b and a != c


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5, float("nan")])
def test_bernoulli_bad_theta(bad):
    with pytest.raises(ValueError, match="theta"):
        fisher.bernoulli_fisher(bad)
    with pytest.raises(ValueError, match="theta"):
        fisher.bernoulli_fisher_monte_carlo(bad)


def test_bernoulli_bad_outcomes():
    with pytest.raises(ValueError, match="x"):
        fisher.bernoulli_score(torch.tensor([0.5]), 0.3)


# ------------------------------------------------------------------ per-sample gradients

def test_per_sample_grads_equal_reference_loop(cnn, images):
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 2])
    fast = fisher.per_sample_grads(cnn, images, labels, batch_size=3)
    assert torch.allclose(fast, reference_grads(cnn, images, labels), atol=1e-6, rtol=1e-4)


def test_predicted_target_uses_argmax(cnn, images):
    with torch.no_grad():
        predicted = cnn(images).argmax(1)
    assert torch.allclose(fisher.per_sample_grads(cnn, images), reference_grads(cnn, images, predicted), atol=1e-6)
    assert torch.allclose(fisher.per_sample_grads(cnn, images, "predicted"),
                          fisher.per_sample_grads(cnn, images, predicted), atol=1e-7)


def test_selected_parameters_and_dict_output(cnn, images):
    labels = torch.zeros(7, dtype=torch.long)
    full = fisher.per_sample_grads(cnn, images, labels, flatten=False)
    last = fisher.per_sample_grads(cnn, images, labels, params="last_layer", flatten=False)
    assert set(last) == {"classifier.fc2.weight", "classifier.fc2.bias"}
    for name, value in last.items():
        assert torch.allclose(value, full[name], atol=1e-7)
    by_module = fisher.per_sample_grads(cnn, images, labels, params=cnn.classifier.fc2)
    by_names = fisher.per_sample_grads(cnn, images, labels, params=["classifier.fc2.weight", "classifier.fc2.bias"])
    assert torch.equal(by_module, by_names)
    assert by_module.shape == (7, cnn.last_layer.weight.numel() + cnn.last_layer.bias.numel())


def test_last_layer_closed_form(cnn, images):
    """For the last layer the NLL gradient is (p - onehot(y)) h^T: a second, analytic oracle."""
    labels = torch.tensor([1, 0, 4, 2, 3, 3, 0])
    g = fisher.per_sample_grads(cnn, images, labels, params="classifier.fc2.weight")
    with torch.no_grad():
        h = cnn.embed(images)
        e = torch.softmax(cnn.last_layer(h), 1) - F.one_hot(labels, 5)
    assert torch.allclose(g, (e[:, :, None] * h[:, None, :]).flatten(1), atol=1e-6)


def test_sampled_labels_are_seeded_and_follow_the_model():
    model = linear_model(d=3, k=3)
    x = torch.randn(4000, 3, generator=torch.Generator().manual_seed(0))
    a = fisher.per_sample_grads(model, x, "sampled", seed=1)
    b = fisher.per_sample_grads(model, x, "sampled", seed=1)
    c = fisher.per_sample_grads(model, x, "sampled", seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # bias gradient = p - onehot(y): its mean over samples is ~0 when y ~ p(y|x) (the score has mean zero)
    bias = a[:, -3:]
    assert bias.mean(0).abs().max() < 0.03
    given_labels = fisher.per_sample_grads(model, x, 0)
    assert given_labels[:, -3:].mean(0).abs().max() > 0.1


def test_gradient_norms_match_per_sample_grads(cnn, images):
    norms = fisher.gradient_norms(cnn, images, batch_size=4)
    assert torch.allclose(norms, fisher.per_sample_grads(cnn, images).norm(dim=1), rtol=1e-5)
    assert norms.shape == (7,) and (norms >= 0).all()


def test_fisher_trace_per_sample_matches_explicit_expectation(cnn, images):
    exact = fisher.fisher_trace_per_sample(cnn, images[:3], params="classifier", batch_size=2)
    with torch.no_grad():
        probs = torch.softmax(cnn(images[:3]), 1)
    expected = torch.zeros(3)
    for k in range(5):
        g = fisher.per_sample_grads(cnn, images[:3], k, params="classifier")
        expected += probs[:, k] * g.pow(2).sum(1)
    assert torch.allclose(exact, expected, rtol=1e-4)


# ------------------------------------------------------------------ Fisher matrices

def test_empirical_fisher_matrix_and_summaries():
    model = linear_model(d=3, k=2)
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(3))
    y = torch.randint(0, 2, (50,), generator=torch.Generator().manual_seed(4))
    info = fisher.fisher_information(model, x, kind="empirical", labels=y, full=True, top_k=4)
    u = reference_grads(model, x, y)
    expected = u.T @ u / 50
    assert torch.allclose(info.matrix, expected, atol=1e-6)
    assert torch.allclose(info.diagonal, expected.diagonal(), atol=1e-6)
    assert info.trace == pytest.approx(float(expected.trace()), rel=1e-5)
    eig = torch.linalg.eigvalsh(expected.double()).flip(0)[:4].float()
    assert torch.allclose(info.eigenvalues, eig, atol=1e-5)
    assert info.num_samples == 50 and info.num_params == 8 and "FisherInformation" in repr(info)


def test_sampled_fisher_matches_exact_expectation():
    """MC Fisher with many sampled labels ~ the exact sum over classes sum_y p_y g_y g_y^T."""
    model = linear_model(d=2, k=3, seed=1)
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(5))
    info = fisher.fisher_information(model, x, n_samples=400, seed=0, full=True)
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
    exact = torch.zeros(9, 9)
    for k in range(3):
        g = reference_grads(model, x, torch.full((20,), k))
        exact += (probs[:, k, None, None] * g[:, :, None] * g[:, None, :]).sum(0) / 20
    assert torch.allclose(info.matrix, exact, atol=0.02)
    assert info.trace == pytest.approx(float(exact.trace()), rel=0.05)


def test_empirical_and_sampled_fisher_agree_for_a_calibrated_model():
    """When labels really come from the model, the empirical Fisher estimates the Fisher too."""
    model = linear_model(d=2, k=3, seed=2)
    x = torch.randn(3000, 2, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        y = torch.multinomial(torch.softmax(model(x), 1), 1, generator=torch.Generator().manual_seed(7))[:, 0]
    emp = fisher.fisher_information(model, x, kind="empirical", labels=y)
    true = fisher.fisher_information(model, x, kind="sampled", seed=3)
    assert emp.trace == pytest.approx(true.trace, rel=0.1)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 12), p=st.integers(1, 12), seed=st.integers(0, 1000))
def test_gram_trick_eigenvalues(m, p, seed):
    g = torch.randn(m, p, generator=torch.Generator().manual_seed(seed))
    fast = fisher.fisher_eigenvalues(g)
    direct = torch.linalg.eigvalsh((g.T @ g / m).double()).flip(0)[:min(m, p)].float()
    assert fast.shape == (min(m, p),)
    assert torch.allclose(fast, direct.clamp_min(0), atol=1e-4)
    assert (fast >= 0).all() and (fast[:-1] >= fast[1:] - 1e-6).all()
    assert float(fast.sum()) == pytest.approx(fisher.fisher_trace(g), rel=1e-4, abs=1e-5)


# ------------------------------------------------------------------ representations and toys

def test_representation_spectrum_matches_covariance_svd():
    feats = torch.randn(40, 6, generator=torch.Generator().manual_seed(0)) * torch.tensor([5, 3, 1, 0.5, 0.1, 0.01])
    spectrum = fisher.representation_spectrum(feats)
    cov = torch.cov(feats.T.double())
    assert torch.allclose(spectrum.double(), torch.linalg.svdvals(cov), rtol=1e-4)
    assert (spectrum[:-1] >= spectrum[1:]).all()


def test_representation_spectrum_of_a_model(cnn, images):
    s = fisher.representation_spectrum(cnn, images)
    assert s.shape == (16,)
    assert 1.0 <= fisher.effective_rank(s) <= 16


def test_effective_rank_bounds():
    assert fisher.effective_rank(torch.tensor([1.0, 0, 0])) == pytest.approx(1.0)
    assert fisher.effective_rank(torch.ones(8)) == pytest.approx(8.0)
    with pytest.raises(ValueError):
        fisher.effective_rank(torch.tensor([1.0, -1.0]))


def test_negative_gradient_is_steepest_descent():
    theta = torch.tensor([-2.5, 2.5], dtype=torch.float64)
    g = fisher.toy_gradient(fisher.logistic_toy_loss, theta)
    angles = torch.linspace(0, 2 * math.pi, 73, dtype=torch.float64)[:-1]
    others = torch.stack([angles.cos(), angles.sin()], 1)
    losses = fisher.descent_step_losses(fisher.logistic_toy_loss, theta, torch.cat([-g.view(1, 2), others]), 1e-3)
    assert losses[0] <= losses[1:].min() + 1e-9
    grid = torch.zeros(3, 4, 2)
    assert fisher.logistic_toy_loss(grid).shape == (3, 4)


# ------------------------------------------------------------------ hygiene

class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.dropout = nn.Dropout(0.5)
        self.num_classes = 3
        self.explode = False

    def forward(self, x):
        if self.explode:
            raise RuntimeError("boom")
        return self.fc(self.dropout(x))


def snapshot(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()))


def assert_same(before, after):
    assert before[0] == after[0], "training modes changed"
    assert before[1] == after[1], "requires_grad changed"
    for a, b in zip(before[2], after[2]):
        assert (a is None and b is None) or torch.equal(a, b), ".grad changed"
    assert before[3] == after[3], "hooks left behind"


@pytest.mark.parametrize("call", [
    lambda m, x: fisher.per_sample_grads(m, x),
    lambda m, x: fisher.gradient_norms(m, x, "sampled"),
    lambda m, x: fisher.fisher_trace_per_sample(m, x),
    lambda m, x: fisher.fisher_information(m, x, n_samples=2),
])
def test_hygiene(call):
    model = Exploding().train()
    model.fc.bias.requires_grad_(False)
    model.fc.weight.grad = torch.full_like(model.fc.weight, 7.0)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    before = snapshot(model)
    call(model, x)
    assert_same(before, snapshot(model))
    # gradients are taken in eval mode: dropout off, so repeated calls agree
    assert torch.equal(fisher.per_sample_grads(model, x), fisher.per_sample_grads(model, x))


def test_hygiene_on_exception():
    model = Exploding().train()
    before = snapshot(model)
    model.explode = True
    for call in (fisher.gradient_norms, fisher.per_sample_grads, fisher.fisher_trace_per_sample):
        with pytest.raises(RuntimeError, match="boom"):
            call(model, torch.ones(2, 4))
        assert_same(before, snapshot(model))


def test_embeddings_restore_mode(cnn, images):
    cnn.train()
    try:
        fisher.embeddings(cnn, images)
        assert cnn.training and all(m.training for m in cnn.modules())
    finally:
        cnn.eval()


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("x, error, match", [
    ([[0.0, 1.0]], TypeError, "x must be a torch.Tensor"),
    (torch.ones(3, 4, dtype=torch.long), TypeError, "floating"),
    (torch.ones(4), ValueError, "batch dimension"),
    (torch.ones(0, 4), ValueError, "empty"),
    (torch.tensor([[float("nan"), 0, 0, 0]]), ValueError, "NaN"),
])
def test_bad_x(x, error, match):
    model = linear_model()
    with pytest.raises(error, match=match):
        fisher.per_sample_grads(model, x)
    with pytest.raises(error, match=match):
        fisher.gradient_norms(model, x)


@pytest.mark.parametrize("target, error, match", [
    (3, ValueError, "outside 0..2"),
    (torch.tensor([0, 1, 5]), ValueError, "outside"),
    (torch.tensor([0, -1, 1]), ValueError, "outside"),
    (torch.tensor([0, 1]), ValueError, "shape"),
    (torch.tensor([0.0, 1.0, 1.0]), TypeError, "integer"),
    ("random", ValueError, "target"),
    (True, TypeError, "target"),
])
def test_bad_target(target, error, match):
    with pytest.raises(error, match=match):
        fisher.per_sample_grads(linear_model(), torch.randn(3, 4), target)


def test_bad_params_and_options(cnn, images, monkeypatch):
    with pytest.raises(ValueError, match="params"):
        fisher.per_sample_grads(cnn, images, params="classifier.nope")
    with pytest.raises(ValueError, match="params"):
        fisher.per_sample_grads(cnn, images, params=nn.Linear(2, 2))
    with pytest.raises(TypeError, match="params"):
        fisher.per_sample_grads(cnn, images, params=3)
    # a bare nn.Linear is its own last layer; a model without one is refused
    assert fisher.per_sample_grads(linear_model(), torch.randn(2, 4), params="last_layer").shape == (2, 15)
    with pytest.raises(ValueError, match="no nn.Linear"):
        fisher.per_sample_grads(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Flatten()), torch.randn(2, 3, 1, 1),
                                params="last_layer")
    with pytest.raises(ValueError, match="kind"):
        fisher.fisher_information(cnn, images, kind="observed")
    with pytest.raises(ValueError, match="labels"):
        fisher.fisher_information(cnn, images, kind="empirical")
    with pytest.raises(ValueError, match="labels"):
        fisher.fisher_information(cnn, images, labels=torch.zeros(7, dtype=torch.long))
    monkeypatch.setattr(fisher.information, "MAX_FULL_MATRIX", 100)
    with pytest.raises(ValueError, match="full"):
        fisher.fisher_information(cnn, images, full=True)
    with pytest.raises(ValueError, match="max_params"):
        fisher.fisher_matrix(torch.ones(2, 200), max_params=100)
    with pytest.raises(ValueError, match="batch_size"):
        fisher.per_sample_grads(cnn, images, batch_size=0)
    with pytest.raises(TypeError, match="model"):
        fisher.per_sample_grads("model", images)
    with pytest.raises(ValueError, match="grads"):
        fisher.fisher_trace(torch.ones(3))
    # the penultimate features of a bare nn.Linear are its inputs; a model without one is refused
    inputs = torch.randn(3, 4)
    assert torch.allclose(fisher.representation_spectrum(linear_model(), inputs),
                          fisher.representation_spectrum(inputs))
    with pytest.raises(ValueError, match="no nn.Linear"):
        fisher.representation_spectrum(nn.Sequential(nn.Conv2d(4, 4, 1), nn.Flatten()), inputs[..., None, None])
    with pytest.raises(ValueError, match="directions"):
        fisher.descent_step_losses(fisher.logistic_toy_loss, torch.zeros(2), torch.zeros(1, 2))


# ------------------------------------------------------------------ exercise checkers (lesson 01)

def test_lesson01_checkers(capsys):
    from inferml_course import checks

    assert passes(checks.check_bernoulli_fisher, 1 / (0.1 * 0.9), 0.1)
    for wrong in (0.09, 5.0, None, "x"):
        with pytest.raises(AssertionError, match="TRY AGAIN"):
            checks.check_bernoulli_fisher(wrong, 0.1)
    g = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    assert passes(checks.check_fisher_trace, g.pow(2).sum(1).mean(), g)
    for wrong in (g.pow(2).sum(), g.norm(dim=1).mean(), ...):
        with pytest.raises(AssertionError, match="TRY AGAIN"):
            checks.check_fisher_trace(wrong, g)
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    grad = fisher.toy_gradient(fisher.logistic_toy_loss, theta)
    assert passes(checks.check_steepest_direction, -3 * grad, [1.0, -2.0])
    for wrong in (grad, torch.tensor([1.0, 0.0]), torch.zeros(2), torch.ones(3)):
        with pytest.raises(AssertionError, match="TRY AGAIN"):
            checks.check_steepest_direction(wrong, [1.0, -2.0])
    assert "[PASS]" in capsys.readouterr().out


# ------------------------------------------------------------------ figures and widget (no browser)

def test_lesson01_figures_and_widget():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inferml_course import fisher as fisher_plots

    try:
        fig = fisher_plots.plot_bernoulli_fisher(0.3, n=500)
        assert len(fig.axes) == 2 and all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
        fig = fisher_plots.plot_descent(torch.tensor([-2.5, 2.5]), step=1.0, n_paths=2)
        labels = fig.axes[0].get_legend_handles_labels()[1]
        assert len(labels) == 3 and labels[0].startswith("negative gradient")
        fig = fisher_plots.plot_spectra({"a": torch.tensor([3.0, 1.0, 0.1]), "b": torch.tensor([2.0, 0.01, 0.0])})
        assert "eff. rank" in fig.axes[0].get_legend_handles_labels()[1][0]
        fig = fisher_plots.plot_score_distributions({"clean": torch.rand(20), "ood": torch.rand(20) + 1}, "norm")
        assert fig.axes[0].get_xlabel() == "norm"
        explorer = fisher_plots.BernoulliFisherExplorer(theta=0.4, n=300)
        explorer.theta.value = 0.6  # triggers a redraw through observe
        fig = explorer.draw(0.2, 400)
        assert "0.20" in fig.axes[0].get_title()
    finally:
        plt.close("all")
