"""Uncertainty scores, sampling methods and gradient-based trust: closed forms, per-sample oracles
(the authors' batch-size-1 algorithms written as loops), hygiene and bad input."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inferml_course.models import Ensemble, SmallCNN
from inferml_course.uncertainty import bayesian, scores, trust
from inferml_course.uncertainty.scores import SCORES, compute_scores, get_score, uncertainty

torch.set_num_threads(1)


class TinyNet(nn.Module):
    """Flatten -> Linear -> BatchNorm -> ReLU -> Dropout -> Linear -> ReLU -> last_layer (K logits)."""

    def __init__(self, channels=1, classes=4, hidden=6, p=0.3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, 10), nn.BatchNorm1d(10), nn.ReLU(),
                                  nn.Dropout(p), nn.Linear(10, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, classes)
        self.num_classes = classes
        with torch.no_grad():
            self.body[2].running_mean.uniform_(-0.3, 0.3)
            self.body[2].running_var.uniform_(0.5, 2.0)
            self.fc.weight.mul_(4)
        self.calls = 0
        self.fail_after = None

    @property
    def last_layer(self):
        return self.fc

    def embed(self, x):
        return self.body(x)

    def forward(self, x):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("planned failure")
        return self.fc(self.body(x))


def images(n=12, c=1, size=4, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = SmallCNN(3, 5, width=4, hidden=16).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        model.classifier.fc2.weight.mul_(5)
    return model


@pytest.fixture(scope="module")
def xs():
    return torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------------------------- logit scores
def test_logit_scores_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, -1.0]])
    p = torch.softmax(logits, 1)
    out = scores.logit_scores(logits)
    assert torch.allclose(out["msp"], p.max(1).values)
    assert torch.allclose(out["entropy"], -(p * p.log()).sum(1))
    top = p.sort(1, descending=True).values
    assert torch.allclose(out["margin"], top[:, 0] - top[:, 1])
    assert out["margin"][1] == 0  # a tie has zero margin
    assert torch.allclose(out["nll"], -p.max(1).values.log())
    assert torch.equal(out["max_logit"], torch.tensor([2.0, 1.0]))
    assert torch.allclose(out["energy"], -torch.logsumexp(logits, 1))


def test_entropy_of_saturated_softmax_is_finite():
    out = scores.logit_scores(torch.tensor([[200.0, -200.0, 0.0]]))
    assert torch.isfinite(out["entropy"]).all() and out["entropy"].item() == pytest.approx(0, abs=1e-6)


def test_nll_ranks_like_msp_but_max_logit_does_not():
    # same msp ranking as nll; the max logit can disagree: a large logit with a close competitor
    logits = torch.tensor([[10.0, 9.9, 0.0], [3.0, 0.0, 0.0]])
    out = scores.logit_scores(logits)
    assert torch.equal(out["nll"].argsort(), (-out["msp"]).argsort())
    assert out["max_logit"][0] > out["max_logit"][1]          # the max logit trusts sample 0 more
    assert out["msp"][0] < out["msp"][1]                      # the softmax trusts sample 1 more


def test_registry_directions_and_names():
    assert {"msp", "entropy", "margin", "nll", "max_logit", "energy", "odin", "mahalanobis", "mc_dropout",
            "ensemble", "gradnorm", "purview", "gradtrust"} <= set(SCORES)
    for name in ("msp", "margin", "max_logit", "odin", "gradnorm", "gradtrust", "gradtrust_topk"):
        assert SCORES[name].sign == -1, name
    for name in ("entropy", "nll", "energy", "mahalanobis", "mc_dropout", "purview", "ensemble"):
        assert SCORES[name].sign == 1, name
    with pytest.raises(ValueError, match="score name"):
        get_score("softmax_please")


def test_registry_negates_the_papers_confidence(cnn, xs):
    for name in ("msp", "margin", "gradtrust", "gradnorm"):
        spec = get_score(name)
        assert torch.allclose(spec(cnn, xs), -spec.function(cnn, xs)), name
    # a more confident model (scaled last layer) is less uncertain under every softmax score
    sharp = copy.deepcopy(cnn)
    with torch.no_grad():
        sharp.classifier.fc2.weight.mul_(3)
        sharp.classifier.fc2.bias.mul_(3)
    for name in ("msp", "entropy", "margin", "nll"):
        assert (uncertainty(name, sharp, xs) <= uncertainty(name, cnn, xs) + 1e-6).all(), name


def test_compute_scores_matches_individual_calls(cnn, xs):
    stats = scores.fit_mahalanobis(cnn, xs, torch.arange(10) % 5)
    names = [n for n in SCORES if not n.startswith("ensemble")]
    together = compute_scores(cnn, xs, names, mahalanobis_stats=stats, samples=4, seed=3, batch_size=4)
    for name in names:
        # the same chunks as compute_scores: the Mahalanobis distance of this tiny fixture (10 images, 5 classes)
        # uses an ill-conditioned covariance that turns the last-bit differences of another chunking into 1 %
        options = {"stats": stats, "batch_size": 4} if name == "mahalanobis" else {}
        if name.startswith("mc_dropout"):
            options = {"samples": 4, "seed": 3, "batch_size": 4}
        alone = uncertainty(name, cnn, xs, **options)
        assert torch.allclose(together[name], alone, rtol=1e-4, atol=1e-6), name


def test_default_names_skip_what_does_not_apply(cnn, xs):
    names = set(compute_scores(cnn, xs[:3], samples=2))
    assert "mahalanobis" not in names and "ensemble" not in names and "gradtrust" in names


def test_batch_size_does_not_change_scores(cnn, xs):
    for name in ("msp", "odin", "gradtrust", "purview", "gradnorm"):
        a = uncertainty(name, cnn, xs, batch_size=3)
        b = uncertainty(name, cnn, xs, batch_size=64)
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name


# -------------------------------------------------------------------------------------------- ODIN
def odin_loop(model, x, temperature, epsilon):
    out = []
    for xi in x:
        xi = xi[None].clone().requires_grad_(True)
        z = model(xi)
        loss = F.cross_entropy(z / temperature, z.argmax(1))
        (g,) = torch.autograd.grad(loss, xi)
        sign = (g >= 0).float() * 2 - 1
        with torch.no_grad():
            out.append(torch.softmax(model(xi - epsilon * sign) / temperature, 1).max())
    return torch.stack(out)


def test_odin_matches_the_per_sample_definition(cnn, xs):
    for t, eps in ((1000.0, 0.0014), (1.0, 0.01)):
        assert torch.allclose(scores.odin(cnn, xs, t, eps), odin_loop(cnn, xs, t, eps), atol=1e-6)


def test_odin_t100_variant_is_the_gradtrust_demo_temperature(cnn, xs):
    from inferml_course.uncertainty import experiments
    assert experiments.TUTORIAL_VARIANTS["odin_t100"] == ("odin", {"temperature": 100.0})
    assert torch.allclose(uncertainty("odin", cnn, xs, temperature=100.0), -odin_loop(cnn, xs, 100.0, 0.0014),
                          atol=1e-6)


def test_odin_without_perturbation_is_tempered_msp(cnn, xs):
    with torch.no_grad():
        expected = torch.softmax(cnn(xs) / 1000.0, 1).max(1).values
    assert torch.allclose(scores.odin(cnn, xs, 1000.0, 0.0), expected, atol=1e-7)


def test_odin_perturbation_is_in_pixel_space(cnn, xs):
    x_tilde, pred = scores.odin_perturb(cnn, xs, epsilon=0.01)
    assert torch.allclose((x_tilde - xs).abs(), torch.full_like(xs, 0.01), atol=1e-6)
    assert torch.equal(pred, cnn(xs).argmax(1))


# ------------------------------------------------------------------------------------- Mahalanobis
def test_mahalanobis_tied_covariance_by_brute_force():
    model = TinyNet(classes=3).eval()
    x, labels = images(60, seed=2), torch.arange(60) % 3
    stats = scores.fit_mahalanobis(model, x, labels, ridge=0.0)
    with torch.no_grad():
        h = model.embed(x).double()
    means = torch.stack([h[labels == k].mean(0) for k in range(3)])
    centred = h - means[labels]
    cov = centred.T @ centred / len(h)
    assert torch.allclose(stats.means.double(), means, atol=1e-5)
    precision = torch.linalg.pinv(cov, hermitian=True)
    assert torch.allclose(stats.precision.double(), precision, rtol=1e-3, atol=1e-3)
    xq = images(7, seed=3)
    with torch.no_grad():
        hq = model.embed(xq).double()
    d2 = torch.stack([((hq - m) @ precision @ (hq - m).T).diagonal() for m in means], 1)
    assert torch.allclose(scores.mahalanobis(model, xq, stats).double(), d2.min(1).values, rtol=1e-3, atol=1e-3)


def test_mahalanobis_needs_stats_and_all_classes():
    model = TinyNet(classes=3)
    with pytest.raises(ValueError, match="stats"):
        scores.mahalanobis(model, images(4))
    with pytest.raises(ValueError, match="every class"):
        scores.fit_mahalanobis(model, images(6), torch.tensor([0, 0, 1, 1, 0, 1]))


# ------------------------------------------------------------------------------------------ GradTrust
def released_gradtrust(model, x):
    """The authors' algorithm, batch size 1: MSE to 1/N, .backward(), first 2-D parameter with N rows."""
    m = copy.deepcopy(model).eval()
    out = []
    for xi in x:
        m.zero_grad()
        z = m(xi[None])
        n = z.shape[1]
        F.mse_loss(z, torch.full_like(z, 1.0 / n)).backward()
        w = next(p for p in m.parameters() if p.dim() == 2 and p.shape[0] == n)
        e = w.grad.pow(2).var(dim=1)
        out.append(e.max() / e.mean())
    return torch.stack(out)


def test_gradtrust_equals_the_released_algorithm_and_its_closed_form(cnn, xs):
    reference = released_gradtrust(cnn, xs)
    assert torch.allclose(trust.gradtrust(cnn, xs), reference, rtol=1e-4)
    assert torch.allclose(trust.gradtrust(cnn, xs, method="closed_form"), reference, rtol=1e-4)
    with torch.no_grad():
        z = cnn(xs).double()
    a = (z - 1 / z.shape[1]) ** 4
    assert torch.allclose(trust.gradtrust_from_logits(z), a.max(1).values / a.mean(1))


def test_gradtrust_range_and_extremes():
    t = trust.gradtrust_from_logits(torch.tensor([[5.0, 0.2, 0.2, 0.2, 0.2], [1.0, -0.6, 1.0, -0.6, 1.0]]))
    assert t[0] == pytest.approx(5, rel=1e-3)  # one row dominates: close to N
    assert t[1] >= 1
    random = trust.gradtrust_from_logits(torch.randn(200, 7))
    assert (random >= 1 - 1e-6).all() and (random <= 7 + 1e-6).all()


def topk_loop(model, x, k):
    m = copy.deepcopy(model).eval()
    out = []
    for xi in x:
        z = m(xi[None])
        top = z.topk(k, dim=1).indices[0]
        v = []
        for c in top:
            target = F.one_hot(c, z.shape[1]).float()[None]
            (g,) = torch.autograd.grad(F.mse_loss(m(xi[None]), target), m.last_layer.weight)
            v.append(g.pow(2).flatten().var())
        v = torch.stack(v)
        out.append(v[1:].mean() / v[0])
    return torch.stack(out)


def test_gradtrust_topk_matches_a_per_sample_loop():
    model = TinyNet(classes=5).eval()
    x = images(6, seed=4)
    assert torch.allclose(trust.gradtrust_topk(model, x, k=3), topk_loop(model, x, 3), rtol=1e-4)
    with pytest.raises(ValueError, match="k must be"):
        trust.gradtrust_topk(model, x, k=9)


# -------------------------------------------------------------------------------------------- Purview
def released_purview(model, x, part):
    m = copy.deepcopy(model).eval()
    out = []
    for xi in x:
        m.zero_grad()  # the demo forgot this; we zero the gradients first
        z = m(xi[None])
        F.binary_cross_entropy_with_logits(z, torch.ones_like(z), reduction="none").mean().backward()
        s = torch.stack([p.grad.pow(2).sum() for p in m.parameters()])
        j = len(s) - 1
        pick = {"initial": s[: j // 2], "final": s[math.ceil(j / 2):], "all": s}[part]
        out.append(pick.mean())
    return torch.stack(out)


@pytest.mark.parametrize("part", ["final", "initial", "all"])
def test_purview_matches_the_per_sample_algorithm(cnn, xs, part):
    assert torch.allclose(trust.purview(cnn, xs[:5], part=part), released_purview(cnn, xs[:5], part), rtol=1e-4)


def test_purview_ignores_stale_gradients(cnn, xs):
    model = copy.deepcopy(cnn)
    before = trust.purview(model, xs[:4])
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    assert torch.allclose(trust.purview(model, xs[:4]), before)
    feats, names = trust.purview_features(model, xs[:4])
    assert feats.shape == (4, len(list(model.parameters()))) and names[0] == "features.block1.conv1.weight"


def test_gradtrust_topk_both_orientations():
    """The slide's wording (predicted / contrast) is the reciprocal of ours: opposite rankings, mirrored AUROC."""
    from inferml_course.uncertainty import metrics
    model = TinyNet(classes=5).eval()
    x = images(12, seed=5)
    ours = trust.gradtrust_topk(model, x, k=3)
    assert torch.equal(ours, trust.gradtrust_topk(model, x, k=3, ratio="contrast_over_predicted"))
    slide = trust.gradtrust_topk(model, x, k=3, ratio="predicted_over_contrast")
    assert torch.allclose(slide, 1 / topk_loop(model, x, 3), rtol=1e-4)       # v_P / mean_Q v_Q, by hand
    assert torch.allclose(slide * ours, torch.ones_like(ours), rtol=1e-5)
    flags = torch.tensor([0, 1] * 6).bool()
    assert metrics.auroc(ours, flags) + metrics.auroc(slide, flags) == pytest.approx(1.0)
    assert set(trust.TOPK_RATIOS) == {"contrast_over_predicted", "predicted_over_contrast"}
    with pytest.raises(ValueError, match="ratio"):
        trust.gradtrust_topk(model, x, ratio="inverse")


# ------------------------------------------------------------------------------------------- GradNorm
def huang_gradnorm_loop(model, x, temperature=1.0):
    """Huang et al.'s code: targets all ones, loss sum_c -log softmax(z/T)_c, L1 norm of the weight gradient."""
    m = copy.deepcopy(model).eval()
    out = []
    for xi in x:
        z = m(xi[None]) / temperature
        loss = -torch.log_softmax(z, 1).sum()
        (g,) = torch.autograd.grad(loss, m.last_layer.weight)
        out.append(g.abs().sum())
    return torch.stack(out)


def gradtrust_demo_gradnorm_loop(model, x):
    """The GradTrust demo's get_gradnorm, one image at a time: nn.KLDivLoss()(uniform, softmax(z)), -L2 norm."""
    import warnings
    m = copy.deepcopy(model).eval()
    out = []
    for xi in x:
        z = m(xi[None])
        n = z.shape[1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # KLDivLoss's note on the 'mean' reduction
            loss = nn.KLDivLoss()(torch.full((1, n), 1.0 / n), F.softmax(z, dim=1))
        (g,) = torch.autograd.grad(loss, m.last_layer.weight)
        out.append(-torch.norm(g, p=2))
    return torch.stack(out)


def test_gradnorm_gradtrust_demo_variant(cnn, xs):
    by_grad = trust.gradnorm(cnn, xs, variant="gradtrust_demo")
    closed = trust.gradnorm(cnn, xs, variant="gradtrust_demo", method="closed_form")
    assert torch.allclose(by_grad, closed, rtol=1e-4)
    assert torch.allclose(gradtrust_demo_gradnorm_loop(cnn, xs), closed, rtol=1e-4)
    with torch.no_grad():
        z, h = cnn(xs), cnn.embed(xs)
    p, k = torch.softmax(z, 1), cnn.num_classes
    entropy = -(p * p.log()).sum(1, keepdim=True)
    formula = -(p * (p.log() + entropy) / k).norm(dim=1) * h.norm(dim=1)  # dL/dz = p (log p + H) / N
    assert torch.allclose(closed, formula, rtol=1e-5)
    assert torch.equal(trust.gradnorm(cnn, xs), trust.gradnorm(cnn, xs, variant="huang"))   # default unchanged
    # analytic: a uniform softmax (equal logits) has zero gradient, so the demo's score is 0
    zero = trust.gradnorm_closed_form(torch.zeros(2, 4), torch.ones(2, 3), variant="gradtrust_demo")
    assert torch.equal(zero.abs(), torch.zeros(2))
    assert torch.allclose(uncertainty("gradnorm", cnn, xs, variant="gradtrust_demo"), -closed, rtol=1e-4)
    with pytest.raises(ValueError, match="variant"):
        trust.gradnorm(cnn, xs, variant="openood")
    with pytest.raises(ValueError, match="temperature"):
        trust.gradnorm(cnn, xs, variant="gradtrust_demo", temperature=2.0)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_gradnorm_gradient_closed_form_and_original_code_agree(cnn, xs, temperature):
    k = cnn.num_classes
    by_grad = trust.gradnorm(cnn, xs, temperature=temperature)
    closed = trust.gradnorm(cnn, xs, temperature=temperature, method="closed_form")
    assert torch.allclose(by_grad, closed, rtol=1e-4)
    # the authors backpropagate N times the KL (plus a constant): same ranking, N times the value
    assert torch.allclose(huang_gradnorm_loop(cnn, xs, temperature) / k, closed, rtol=1e-4)
    with torch.no_grad():
        z, h = cnn(xs), cnn.embed(xs)
    formula = (torch.softmax(z / temperature, 1) - 1 / k).abs().sum(1) * h.abs().sum(1) / temperature
    assert torch.allclose(closed, formula, rtol=1e-5)


# ------------------------------------------------------------------------------ sampling: decomposition
def test_decomposition_of_disagreeing_one_hot_members_is_ln2():
    probs = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    parts = bayesian.decompose(probs)
    assert parts.aleatoric.item() == pytest.approx(0)
    assert parts.epistemic.item() == pytest.approx(math.log(2))
    assert parts.total.item() == pytest.approx(math.log(2))


def test_identical_members_have_no_epistemic_uncertainty():
    p = torch.softmax(torch.randn(1, 5, 4), -1).expand(3, 5, 4)
    parts = bayesian.decompose(p)
    assert torch.allclose(parts.epistemic, torch.zeros(5), atol=1e-6)
    assert torch.allclose(parts.total, parts.aleatoric, atol=1e-6)


def test_decomposition_rejects_logits_and_unnormalised_rows():
    with pytest.raises(ValueError, match="sum to 1"):
        bayesian.decompose(torch.full((2, 3, 4), 0.2))
    with pytest.raises(ValueError, match="softmax"):
        bayesian.decompose(torch.randn(2, 3, 4) * 5)
    with pytest.raises(ValueError, match=r"\(S, N, K\)"):
        bayesian.decompose(torch.full((3, 4), 0.25))


# ----------------------------------------------------------------------------------------- MC dropout
def test_mc_dropout_samples_vary_and_are_seeded(cnn, xs):
    a = bayesian.mc_dropout_probs(cnn, xs, samples=5, seed=1)
    b = bayesian.mc_dropout_probs(cnn, xs, samples=5, seed=1)
    c = bayesian.mc_dropout_probs(cnn, xs, samples=5, seed=2)
    assert a.shape == (5, 10, 5) and torch.equal(a, b) and not torch.equal(a, c)
    assert (a.std(0) > 0).any()


def test_mc_dropout_head_only_path_equals_full_passes(cnn, xs):
    fast = bayesian.mc_dropout_probs(cnn, xs, samples=4, seed=7, batch_size=4)
    slow = bayesian.mc_dropout_probs(cnn, xs, samples=4, seed=7, batch_size=4, reuse_features=False)
    assert torch.allclose(fast, slow, atol=1e-6)


def test_mc_dropout_leaves_batchnorm_rng_and_modes_untouched():
    model = TinyNet()
    model.train()                       # even a model left in train mode...
    model.body[4].eval()                # ...with one module in its own mode
    bn_before = [b.clone() for b in model.buffers()]
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    probs = bayesian.mc_dropout_probs(model, images(8), samples=6, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(bn_before, model.buffers())), "batch-norm statistics changed"
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng), "the caller's RNG state changed"
    # batch norm ran in eval mode: each sample equals an eval pass with that sample's dropout mask
    assert probs.shape == (6, 8, 4) and (probs.std(0) > 0).any()


def test_mc_dropout_restores_modes_after_an_exception():
    model = TinyNet()
    model.train()
    modes = [m.training for m in model.modules()]
    model.fail_after = 1
    with pytest.raises(RuntimeError, match="planned"):
        bayesian.mc_dropout(model, images(4), samples=3)
    assert [m.training for m in model.modules()] == modes


def test_mc_dropout_needs_dropout():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with pytest.raises(ValueError, match="no dropout"):
        bayesian.mc_dropout(model, images(2))


def test_ensemble_probs_average_member_probabilities():
    members = [TinyNet(seed=s).eval() for s in range(3)]
    ens = Ensemble(members)
    x = images(5)
    with torch.no_grad():
        manual = torch.stack([torch.softmax(m(x), 1) for m in members])
    assert torch.allclose(bayesian.ensemble_probs(ens, x), manual, atol=1e-6)
    assert torch.allclose(bayesian.ensemble_probs(members, x), manual, atol=1e-6)
    assert torch.allclose(bayesian.ensemble(ens, x), bayesian.decompose(manual).total)
    # the ensemble's forward is the log of the mean probability
    with torch.no_grad():
        assert torch.allclose(ens(x).exp(), manual.mean(0), atol=1e-6)
    with pytest.raises(TypeError, match="Ensemble"):
        bayesian.ensemble(TinyNet(), x)


def test_score_batch_on_an_ensemble_reuses_the_members_pass():
    ens = Ensemble([TinyNet(seed=s).eval() for s in range(3)])
    x = images(5)
    result = scores.score_batch(ens, x, ["ensemble", "ensemble_mi", "msp"])
    with torch.no_grad():
        assert torch.allclose(result.logits.exp(), ens(x).exp(), atol=1e-6)
    assert torch.allclose(result.scores["ensemble"], bayesian.ensemble(ens, x))
    assert torch.allclose(result.scores["ensemble_mi"], bayesian.ensemble(ens, x, measure="epistemic"))
    assert torch.allclose(result.scores["msp"], -torch.softmax(ens(x), 1).max(1).values, atol=1e-6)


# ------------------------------------------------------------------------------------------- hygiene
def snapshot(model):
    return {
        "modes": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                     for m in model.modules()),
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


def assert_same(before, after):
    assert before["modes"] == after["modes"], "training modes changed"
    assert before["requires_grad"] == after["requires_grad"], "requires_grad changed"
    assert before["hooks"] == after["hooks"], "hooks left behind"
    for a, b in zip(before["grads"], after["grads"]):
        assert (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b)), ".grad changed"
    for k in before["state"]:
        assert torch.equal(before["state"][k], after["state"][k]), f"{k} changed"


def messy_model():
    model = TinyNet(classes=4)
    model.train()
    model.body[2].eval()                        # mixed modes
    model.body[1].weight.requires_grad_(False)  # a frozen parameter
    model.fc.weight.grad = torch.full_like(model.fc.weight, 0.5)  # a stale gradient
    return model


HYGIENE_NAMES = [n for n in SCORES if not n.startswith("ensemble")]


@pytest.mark.parametrize("name", HYGIENE_NAMES)
def test_every_score_leaves_the_model_as_it_found_it(name):
    model = messy_model()
    x = images(6)
    stats = scores.fit_mahalanobis(model, images(40, seed=5), torch.arange(40) % 4)
    options = {"stats": stats} if name == "mahalanobis" else {}
    before = snapshot(model)
    out = uncertainty(name, model, x, **options)
    assert out.shape == (6,) and torch.isfinite(out).all()
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("name", HYGIENE_NAMES)
def test_every_score_cleans_up_after_an_exception(name):
    model = messy_model()
    stats = scores.fit_mahalanobis(model, images(40, seed=5), torch.arange(40) % 4)
    options = {"stats": stats} if name == "mahalanobis" else {}
    before = snapshot(model)
    model.calls, model.fail_after = 0, 0
    with pytest.raises(RuntimeError, match="planned"):
        uncertainty(name, model, images(6), **options)
    model.fail_after = None
    assert_same(before, snapshot(model))


def test_compute_scores_is_hygienic(cnn, xs):
    model = copy.deepcopy(cnn).train()
    before = snapshot(model)
    compute_scores(model, xs[:4], samples=2)
    assert_same(before, snapshot(model))


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name", ["msp", "odin", "gradtrust", "purview", "mc_dropout"])
def test_bad_images_are_rejected(name):
    model = TinyNet()
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        uncertainty(name, model, [[0.0]])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        uncertainty(name, model, torch.rand(3, 16))
    with pytest.raises(ValueError, match="NaN"):
        uncertainty(name, model, torch.full((2, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="empty"):
        uncertainty(name, model, torch.rand(0, 1, 4, 4))
    with pytest.raises(TypeError, match="floating"):
        uncertainty(name, model, torch.ones(2, 1, 4, 4, dtype=torch.long))


def test_bad_options_are_rejected():
    model, x = TinyNet(), images(3)
    with pytest.raises(ValueError, match="batch_size"):
        scores.msp(model, x, batch_size=0)
    with pytest.raises(ValueError, match="temperature"):
        scores.odin(model, x, temperature=-1.0)
    with pytest.raises(ValueError, match="method"):
        trust.gradtrust(model, x, method="magic")
    with pytest.raises(ValueError, match="part"):
        trust.purview(model, x, part="middle")
    with pytest.raises(ValueError, match="measure"):
        bayesian.mc_dropout(model, x, measure="both")
    with pytest.raises(ValueError, match="samples"):
        bayesian.mc_dropout(model, x, samples=0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 3)).eval()
    assert torch.equal(trust.gradtrust(linear, x), trust.gradtrust(linear, x, classifier="1"))
    with pytest.raises(ValueError, match="no nn.Linear.*classifier="):
        trust.gradtrust(nn.Sequential(nn.Flatten()), x)
    with pytest.raises(ValueError, match="does not produce the logits"):
        trust.gradtrust(nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 3), nn.LogSoftmax(1)).eval(), x)
    with pytest.raises(TypeError, match="nn.Module"):
        scores.msp(lambda v: v, x)
    with pytest.raises(ValueError, match="logits"):
        trust.gradtrust_from_logits(torch.ones(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_scores_follow_the_device(cnn, xs):
    model = copy.deepcopy(cnn).cuda()
    for name in ("msp", "odin", "gradtrust", "purview", "gradnorm", "mc_dropout"):
        out = uncertainty(name, model, xs.cuda())
        assert out.device.type == "cuda"
        assert torch.allclose(out.cpu(), uncertainty(name, cnn, xs), rtol=1e-3, atol=1e-5), name


def test_head_split_is_found_by_structure_beyond_the_course_cnn():
    """The trunk-once shortcut of MC dropout takes a plain chain with dropout in its last child only; a
    torchvision VGG (flatten inside its forward) and a chain with dropout in the trunk run full passes, and
    every path gives the same samples as full passes."""
    from torchvision.models import vgg11

    from inferml_course._core.adapter import dropout_head, head_after_features

    torch.manual_seed(0)
    chain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Flatten(),
                          nn.Sequential(nn.Dropout(0.5), nn.Linear(4 * 30 * 30, 5))).eval()
    trunk_dropout = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout2d(0.3), nn.Flatten(),
                                  nn.Linear(4 * 30 * 30, 5)).eval()
    assert head_after_features(chain) is not None and dropout_head(chain).head is chain[3]
    assert head_after_features(trunk_dropout) is not None and dropout_head(trunk_dropout) is None
    assert head_after_features(vgg11(num_classes=5).eval()) is None
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for model in (chain, trunk_dropout):
        fast = bayesian.mc_dropout_probs(model, x, samples=4, seed=3)
        slow = bayesian.mc_dropout_probs(model, x, samples=4, seed=3, reuse_features=False)
        assert torch.allclose(fast, slow, atol=1e-6)
