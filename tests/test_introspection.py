"""Introspective learning: closed-form features against autograd, the reflection network, hygiene, bad input."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inferml_course import introspection as intro
from inferml_course.models import SmallCNN

from conftest import passes

K = 4


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return SmallCNN(3, K, width=4, hidden=12).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def autograd_question_grads(model, x, loss):
    """Per image and question I, autograd's gradient of J(z, delta_I) w.r.t. (W, b) of the last layer."""
    fc = model.last_layer
    weights, biases = [], []
    for n in range(x.shape[0]):
        w_rows, b_rows = [], []
        for q in range(K):
            z = model(x[n:n + 1])
            target = torch.tensor([q])
            j = F.cross_entropy(z, target) if loss == "cross_entropy" else F.mse_loss(z, F.one_hot(target, K).float())
            gw, gb = torch.autograd.grad(j, [fc.weight, fc.bias])
            w_rows.append(gw)
            b_rows.append(gb)
        weights.append(torch.stack(w_rows))
        biases.append(torch.stack(b_rows))
    return torch.stack(weights), torch.stack(biases)  # (N, K, K, D), (N, K, K)


@pytest.mark.parametrize("loss", intro.LOSSES)
def test_full_features_equal_autograd(cnn, images, loss):
    gw, gb = autograd_question_grads(cnn, images, loss)
    feats = intro.introspective_features(cnn, images, loss=loss, reduction="full", batch_size=2)
    n, d = images.shape[0], cnn.last_layer.in_features
    assert feats.shape == (n, K * K * d + K * K)
    assert torch.allclose(feats[:, :K * K * d], gw.flatten(1), atol=1e-7)
    assert torch.allclose(feats[:, K * K * d:], gb.flatten(1), atol=1e-7)


@pytest.mark.parametrize("loss", intro.LOSSES)
def test_sum_is_the_all_ones_backprop(cnn, images, loss):
    """Summing every question equals one backward pass: cross-entropy with an all-ones target, MSE with K x the
    uniform target 1/K (not the all-ones target, see the next test)."""
    gw, gb = autograd_question_grads(cnn, images, loss)
    feats = intro.introspective_features(cnn, images, loss=loss, reduction="sum")
    assert torch.allclose(feats, torch.cat([gw.sum(1).flatten(1), gb.sum(1)], 1), atol=1e-6)
    fc = cnn.last_layer
    z = cnn(images[:1])
    if loss == "cross_entropy":  # cross-entropy with a target vector of all ones
        j = -torch.log_softmax(z, 1).sum()
    else:  # K x MSE towards the uniform vector 1/K (GradTrust's target)
        j = K * F.mse_loss(z, torch.full((1, K), 1.0 / K))
    g, gbias = torch.autograd.grad(j, [fc.weight, fc.bias])
    assert torch.allclose(feats[0], torch.cat([g.flatten(), gbias]), atol=1e-6)


def test_sum_equals_the_all_ones_target_for_cross_entropy_only(cnn, images):
    """The "sum" reduction is the all-ones backprop for cross-entropy (linear in the target), not for MSE."""
    fc, z = cnn.last_layer, cnn(images[:2])
    ones = torch.ones(2, K)
    ce_ones = torch.autograd.grad(-(ones * torch.log_softmax(z, 1)).sum(), [fc.weight, fc.bias], retain_graph=True)
    mse_ones = torch.autograd.grad(2 * F.mse_loss(z, ones, reduction="sum") / K, [fc.weight, fc.bias])
    for loss, (gw, gb) in (("cross_entropy", ce_ones), ("mse", mse_ones)):
        feats = intro.introspective_features(cnn, images[:2], loss=loss, reduction="sum")
        # autograd summed the two images; the features are per image, so sum them too
        assert feats.shape == (2, gw.numel() + gb.numel())
        same = torch.allclose(feats.sum(0), torch.cat([gw.flatten(), gb]), atol=1e-6)
        assert same == (loss == "cross_entropy"), loss
    # MSE: the sum over questions is 2 z - 2/K per logit (bias part), the all-ones target (2/K)(z - 1)
    mse, z = intro.introspective_features(cnn, images[:2], loss="mse", reduction="sum")[:, -K:], z.detach()
    assert torch.allclose(mse, 2 * z - 2 / K, atol=1e-6)
    assert torch.allclose(mse - (2 / K) * (z - 1), (2 - 2 / K) * z, atol=1e-6)


def test_row_norms_and_question_matrix(cnn, images):
    gw, gb = autograd_question_grads(cnn, images, "cross_entropy")
    norms = intro.question_gradient_norms(cnn, images)
    expected = torch.sqrt(gw.pow(2).sum(-1) + gb.pow(2))
    assert norms.shape == (5, K, K)
    assert torch.allclose(norms, expected, atol=1e-6)
    without_bias = intro.introspective_features(cnn, images, reduction="row_norms", include_bias=False)
    assert torch.allclose(without_bias.view(5, K, K), gw.pow(2).sum(-1).sqrt(), atol=1e-6)


def test_features_are_sparse_for_a_confident_model():
    """Cross-entropy question gradients: the row for the predicted question vanishes as p -> one-hot."""
    torch.manual_seed(1)
    model = SmallCNN(3, K, width=4, hidden=12).eval()
    with torch.no_grad():
        model.last_layer.weight.mul_(0)
        model.last_layer.bias.copy_(torch.tensor([30.0, 0, 0, 0]))
    norms = intro.question_gradient_norms(model, torch.rand(2, 3, 32, 32))
    assert norms[:, 0].max() < 1e-6           # "Why 0, rather than 0?" asks for no change
    assert (norms[:, 1:, 0] > 0).all()         # other questions touch the predicted row ...
    off = norms[:, 1:, 1:] * (1 - torch.eye(K - 1))
    assert off.max() < 1e-6                    # ... and their own row, nothing else


def test_classifier_fit_predict_and_frozen_sensing(cnn):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 32, 32, generator=gen)
    y = torch.randint(0, K, (64,), generator=gen)
    cnn.train()
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    flags = [p.requires_grad for p in cnn.parameters()]
    model = intro.IntrospectiveClassifier(cnn, hidden=(16, 8)).fit(x, y, epochs=2, batch_size=16, seed=3)
    assert cnn.training and all(m.training for m in cnn.modules())
    for k, v in cnn.state_dict().items():
        assert torch.equal(v, before[k]), f"sensing network changed: {k}"
    assert [p.requires_grad for p in cnn.parameters()] == flags
    assert all(p.grad is None for p in cnn.parameters())
    proba = model.predict_proba(x[:10], batch_size=4)
    assert proba.shape == (10, K) and torch.allclose(proba.sum(1), torch.ones(10), atol=1e-5)
    assert torch.equal(model.predict(x[:10]), proba.argmax(1))
    ff, introspective = model.both_proba(x[:10])
    assert torch.allclose(introspective, proba)
    cnn.eval()
    with torch.no_grad():
        assert torch.allclose(ff, torch.softmax(cnn(x[:10]), 1), atol=1e-6)
    again = intro.IntrospectiveClassifier(cnn, hidden=(16, 8)).fit(x, y, epochs=2, batch_size=16, seed=3)
    assert torch.allclose(again.predict_proba(x[:10]), proba), "training is seeded"


def test_classifier_learns_a_separable_problem():
    """H can recover labels that the features carry (sanity check of the training loop)."""
    torch.manual_seed(0)
    sensing = SmallCNN(3, K, width=4, hidden=12).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(200, 3, 32, 32, generator=gen)
    with torch.no_grad():
        y = sensing(x).argmax(1)
    model = intro.IntrospectiveClassifier(sensing, hidden=(32, 16)).fit(x, y, epochs=30, batch_size=32)
    assert (model.predict(x) == y).float().mean() > 0.9


def test_forward_is_differentiable_wrt_input(cnn):
    x = torch.rand(3, 3, 32, 32)
    y = torch.randint(0, K, (3,))
    model = intro.IntrospectiveClassifier(cnn, loss="mse", hidden=(8, 8)).fit(x, y, epochs=1)
    xi = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xi).logsumexp(1).sum(), xi)
    assert g.shape == x.shape and g.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_hygiene_of_features(cnn, images):
    cnn.train()
    cnn.classifier.fc1.weight.requires_grad_(False)
    cnn.last_layer.weight.grad = torch.ones_like(cnn.last_layer.weight)
    try:
        intro.introspective_features(cnn, images)
        assert cnn.training and all(m.training for m in cnn.modules())
        assert not cnn.classifier.fc1.weight.requires_grad
        assert torch.equal(cnn.last_layer.weight.grad, torch.ones_like(cnn.last_layer.weight))
        assert not any(m._forward_hooks for m in cnn.modules())
    finally:
        cnn.eval()
        cnn.classifier.fc1.weight.requires_grad_(True)
        cnn.last_layer.weight.grad = None


class NotLogits(nn.Module):
    """Its last Linear is followed by another operation: the closed form does not apply."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, K)
        self.last_layer = self.fc

    def forward(self, x):
        return self.fc(x.flatten(1)) * 2


class Raising(SmallCNN):
    def forward(self, x):
        super().forward(x)
        raise RuntimeError("boom")


def test_hooks_removed_on_exception(images):
    model = Raising(3, K, width=4, hidden=8).train()
    with pytest.raises(RuntimeError, match="boom"):
        intro.introspective_features(model, images)
    assert not any(m._forward_hooks for m in model.modules())
    assert model.training and all(m.training for m in model.modules())


def test_bad_input(cnn, images):
    with pytest.raises(ValueError, match="loss"):
        intro.introspective_features(cnn, images, loss="hinge")
    with pytest.raises(ValueError, match="reduction"):
        intro.introspective_features(cnn, images, reduction="mean")
    with pytest.raises(TypeError, match="x"):
        intro.introspective_features(cnn, images.numpy())
    with pytest.raises(ValueError, match="x"):
        intro.introspective_features(cnn, images[0])
    with pytest.raises(ValueError, match="NaN"):
        intro.introspective_features(cnn, images * float("nan"))
    with pytest.raises(ValueError, match="empty"):
        intro.introspective_features(cnn, images[:0])
    with pytest.raises(TypeError, match="classifier"):
        intro.introspective_features(cnn, images, classifier="classifier.relu")
    with pytest.raises(ValueError, match="classifier"):
        intro.introspective_features(cnn, images, classifier="classifier.nope")
    with pytest.raises(ValueError, match="classifier"):
        intro.introspective_features(cnn, images, classifier=nn.Linear(12, K))
    with pytest.raises(ValueError, match="logits"):
        intro.introspective_features(NotLogits(), images)
    with pytest.raises(ValueError, match="batch_size"):
        intro.introspective_features(cnn, images, batch_size=0)
    # no last_layer: the final nn.Linear is found by structure; one followed by another layer is refused
    flat = nn.Sequential(nn.Flatten(), nn.Linear(images[0].numel(), K)).eval()
    assert torch.equal(intro.introspective_features(flat, images), intro.introspective_features(flat, images,
                                                                                                 classifier="1"))
    with pytest.raises(ValueError, match="does not produce the logits"):
        intro.introspective_features(nn.Sequential(flat, nn.Tanh()).eval(), images)
    model = intro.IntrospectiveClassifier(cnn)
    with pytest.raises(RuntimeError, match="fit"):
        model.predict(images)
    with pytest.raises(ValueError, match="labels"):
        intro.train_reflection(torch.randn(4, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels"):
        intro.train_reflection(torch.randn(2, 3), torch.tensor([0, 5]), num_classes=3)
    with pytest.raises(ValueError, match="NaN"):
        intro.train_reflection(torch.full((2, 3), float("nan")), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="hidden"):
        intro.ReflectionNetwork(3, 2, hidden=(4,))


@pytest.fixture(scope="module")
def tiny_reflection(cnn):
    """A reflection network trained for one epoch on 24 random images: (classifier, x, y)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(24, 3, 32, 32, generator=gen)
    y = torch.randint(0, K, (24,), generator=gen)
    return intro.IntrospectiveClassifier(cnn, hidden=(8, 8)).fit(x, y, epochs=1), x, y


def test_benchmarks_on_a_tiny_model(tiny_reflection):
    model, x, y = tiny_reflection
    gen = torch.Generator().manual_seed(0)
    result = intro.corruption_benchmark(model, x, y, corruptions=["fog", "gaussian_noise"], severities=(1, 5))
    assert result["accuracy"]["introspective"].shape == (2, 2)
    for table in (result["accuracy"], result["ece"]):
        for values in table.values():
            assert ((values >= 0) & (values <= 1)).all()
    rows = intro.ood_benchmark(model, x[:12], {"noise": torch.rand(12, 3, 32, 32, generator=gen)},
                               methods=("msp", "energy", "odin"))
    assert len(rows) == 6
    assert all(0 <= r["auroc"] <= 1 and 0 <= r["fpr95"] <= 1 for r in rows)
    with pytest.raises(ValueError, match="corruption"):
        intro.corruption_benchmark(model, x, y, corruptions=["rain"])
    with pytest.raises(ValueError, match="method"):
        intro.ood_benchmark(model, x, {"noise": x}, methods=("mahalanobis",))
    with pytest.raises(ValueError, match="ood_sets"):
        intro.ood_benchmark(model, x, {})


def test_corruption_benchmark_per_image_matches_its_tables(tiny_reflection):
    """per_image=True: the top probability and correctness image by image, whose means and ECE are the tables."""
    model, x, y = tiny_reflection
    plain = intro.corruption_benchmark(model, x, y, corruptions=["fog", "contrast"], severities=(1, 4))
    assert "confidence" not in plain
    result = intro.corruption_benchmark(model, x, y, corruptions=["fog", "contrast"], severities=(1, 4), per_image=True)
    for net in ("feed-forward", "introspective"):
        conf, right = result["confidence"][net], result["correct"][net]
        assert conf.shape == right.shape == (len(x), 2, 2) and right.dtype == torch.bool
        assert torch.allclose(right.double().mean(0), result["accuracy"][net].double())
        assert torch.equal(result["accuracy"][net], plain["accuracy"][net])
        assert result["clean_correct"][net].double().mean().item() == pytest.approx(result["clean"]["accuracy"][net])
        # the ECE of one cell from the kept confidences: a one-hot 'probability' with the same top value and hit
        for i in range(2):
            for j in range(2):
                c, r = conf[:, i, j].double(), right[:, i, j]
                bins = (c * 15).long().clamp_max(14)
                ece = sum(((bins == b).double().mean() * (r[bins == b].double().mean() - c[bins == b].mean()).abs()
                           for b in range(15) if (bins == b).any())).item()
                assert ece == pytest.approx(result["ece"][net][i, j].item(), abs=1e-5)


def test_lesson04_checkers(cnn, images, capsys):
    from inferml_course import checks

    with torch.no_grad():
        h = cnn.embed(images[:1])[0]
        z = cnn.last_layer(h)
    onehot = F.one_hot(torch.tensor(2), K).float()
    right = torch.outer(torch.softmax(z, 0) - onehot, h)
    assert passes(checks.check_question_gradient, right, h, z, question=2)
    for wrong in (-right, torch.outer(z - onehot, h), right.T, right + 1, None):
        with pytest.raises(AssertionError, match="TRY AGAIN"):
            checks.check_question_gradient(wrong, h, z, question=2)
    assert "[PASS]" in capsys.readouterr().out


def test_lesson04_ece_checker(capsys):
    from inferml_course import checks
    from inferml_course.uncertainty import calibration

    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(200, K, generator=gen), 1)
    labels = torch.where(torch.rand(200, generator=gen) < 0.6, probs.argmax(1), torch.randint(0, K, (200,), generator=gen))
    conf, pred = probs.max(1)
    correct = (pred == labels).float()

    def by_hand(n_bins=15, weighted=True, absolute=True):
        bin_of = (conf * n_bins).long().clamp_max(n_bins - 1)
        terms = []
        for b in range(n_bins):
            inside = bin_of == b
            if inside.any():
                gap = correct[inside].mean() - conf[inside].mean()
                gap = gap.abs() if absolute else gap
                terms.append(inside.float().mean() * gap if weighted else gap)
        return float(sum(terms) if weighted else sum(terms) / len(terms))

    assert abs(by_hand() - calibration.expected_calibration_error(probs, labels)) < 1e-6
    assert passes(checks.check_ece_by_hand, by_hand(), probs, labels)
    assert passes(checks.check_ece_by_hand, torch.tensor(by_hand()), probs, labels)
    assert "confident by" in capsys.readouterr().out
    hints = {"per cent": 100 * by_hand(), "weighted by the bin's share": by_hand(weighted=False),
             "signs cancelled": by_hand(absolute=False), "mean gap per image": float((correct - conf).abs().mean()),
             "MCE": calibration.maximum_calibration_error(probs, labels), "10 bins": by_hand(10),
             "not the ECE": by_hand() + 0.01, "one number": [by_hand(), by_hand()], "empty": ...}
    for hint, wrong in hints.items():
        with pytest.raises(AssertionError, match=f"TRY AGAIN.*{hint}"):
            checks.check_ece_by_hand(wrong, probs, labels)


def test_lesson04_figures_and_widget(cnn):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inferml_course import introspection as introspection_plots
    from inferml_course.datasets import ImageDataset

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 32, 32, generator=gen)
    y = torch.randint(0, K, (12,), generator=gen)
    data = ImageDataset(x, y, [f"class {k}" for k in range(K)], name="toy")
    model = intro.IntrospectiveClassifier(cnn, hidden=(8, 8)).fit(x, y, epochs=1)
    try:
        fig = introspection_plots.show_question_gradients(torch.rand(K, K), data.classes, predicted=1)
        assert fig.axes[0].get_ylabel()
        result = intro.corruption_benchmark(model, x, y, corruptions=["fog"], severities=(1, 3))
        fig = introspection_plots.plot_corruption_comparison(result)
        assert len(fig.axes) == 2
        rows = introspection_plots.corruption_rows(result)
        assert [r["corruption"] for r in rows] == ["fog", "mean"]
        explorer = introspection_plots.IntrospectionExplorer(model, data)
        explorer.corruption.value = "fog"  # redraw through observe
        out = explorer.compute("contrast", 4, 3)
        assert out["norms"].shape == (K, K)
        assert torch.allclose(out["feed_forward"].sum(), torch.tensor(1.0), atol=1e-5)
        fig = explorer.draw("none", 1, 0)
        assert len(fig.axes) >= 3
    finally:
        plt.close("all")
