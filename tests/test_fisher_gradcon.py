"""GradCon (Kwon et al., ECCV 2020): the gradient-alignment loss, the authors' training loop and score, by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from inferml_course import fisher
from inferml_course.models.gradcon import (GradConCAE, gradcon_losses, gradient_alignment_loss, to_gradcon_input,
                                           train_gradcon)
from inferml_course.models import zoo

from _hygiene import assert_same, snapshot


def _model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    model = GradConCAE(3).to(dtype).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    for ref in model.reference_gradients():
        ref.copy_(torch.randn(ref.shape, generator=gen, dtype=dtype))
    model.reference_count.fill_(5)
    return model


def _images(n=6, seed=0, size=28, dtype=torch.float32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_architecture_shapes_match_the_authors():
    model = GradConCAE(3)
    x = torch.rand(2, 3, 28, 28)
    assert model.down(x).shape == (2, 64, 3, 3)
    assert model(x).shape == (2, 3, 28, 28)
    assert [tuple(w.shape) for w in model.decoder_weights()] == [(64, 64, 4, 4), (64, 32, 4, 4), (32, 32, 4, 4),
                                                                 (32, 3, 4, 4)]
    assert all(r.shape == w.shape for r, w in zip(model.reference_gradients(), model.decoder_weights()))
    assert {"reference_grad0", "reference_grad3", "reference_count"} <= set(model.state_dict())
    with pytest.raises(ValueError, match="to_gradcon_input"):
        model(torch.rand(1, 3, 32, 32))
    assert to_gradcon_input(torch.rand(2, 3, 32, 32)).shape == (2, 3, 28, 28)
    same = torch.rand(1, 3, 28, 28)
    assert to_gradcon_input(same) is same


def test_alignment_loss_by_hand():
    g = [torch.tensor([1.0, 0.0]), torch.tensor([[3.0, 4.0]])]
    r = [torch.tensor([1.0, 1.0]), torch.tensor([[-3.0, -4.0]])]
    # cosines 1/sqrt(2) and -1: L_grad = -(1/2)(1/sqrt(2) - 1)
    assert gradient_alignment_loss(g, r).item() == pytest.approx(-(1 / math.sqrt(2) - 1) / 2, abs=1e-7)
    assert gradient_alignment_loss([torch.ones(3)], [torch.zeros(3)]).item() == 0.0  # no history: cosine 0
    with pytest.raises(ValueError, match="shape"):
        gradient_alignment_loss([torch.ones(3)], [torch.ones(4)])
    with pytest.raises(ValueError, match="same length"):
        gradient_alignment_loss([torch.ones(3)], [])


def test_losses_are_the_mse_and_the_cosines_of_its_decoder_gradients():
    model, x = _model(), _images(4)
    rec, align = gradcon_losses(model, x)
    assert rec.item() == pytest.approx(((model(x) - x) ** 2).mean().item(), rel=1e-6)
    loss = F.mse_loss(model(x), x)
    grads = torch.autograd.grad(loss, model.decoder_weights())
    cos = [F.cosine_similarity(g.flatten(), r.flatten(), dim=0) for g, r in zip(grads, model.reference_gradients())]
    assert align.item() == pytest.approx(-sum(c.item() for c in cos) / 4, abs=1e-6)
    for ref, g in zip(model.reference_gradients(), grads):  # reference = the gradient itself: L_grad = -1
        ref.copy_(g)
    assert gradcon_losses(model, x)[1].item() == pytest.approx(-1.0, abs=1e-6)


def test_alignment_loss_is_second_order_differentiable():
    """d L_grad / d W (through create_graph=True) against a central finite difference, in float64."""
    model, x = _model(dtype=torch.float64), _images(3, dtype=torch.float64)
    w = model.get_parameter("up.6.weight")
    _, align = gradcon_losses(model, x)
    (dw,) = torch.autograd.grad(align, [w])
    direction = torch.randn(w.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    eps = 1e-5
    with torch.no_grad():
        w.add_(eps * direction)
    plus = gradcon_losses(model, x)[1].item()
    with torch.no_grad():
        w.sub_(2 * eps * direction)
    minus = gradcon_losses(model, x)[1].item()
    with torch.no_grad():
        w.add_(eps * direction)
    assert (dw * direction).sum().item() == pytest.approx((plus - minus) / (2 * eps), rel=1e-4)
    assert dw.abs().sum() > 0


def test_training_loop_matches_the_authors_loop_written_out():
    images, val = _images(10, seed=1), _images(4, seed=2)
    alpha, lr, batch, seed = 0.03, 1e-3, 4, 7
    model = train_gradcon(images, val, epochs=2, grad_loss_weight=alpha, lr=lr, batch_size=batch, seed=seed)

    torch.manual_seed(seed)
    mine = GradConCAE(3)
    opt = torch.optim.Adam(mine.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    refs, count, best = [torch.zeros_like(w) for w in mine.decoder_weights()], 0, (float("inf"), None)
    for _ in range(2):
        for index in torch.randperm(10, generator=gen).split(batch):
            b = images[index]
            opt.zero_grad()
            rec = F.mse_loss(mine(b), b)
            gs = torch.autograd.grad(rec, mine.decoder_weights(), create_graph=True, retain_graph=True)
            lg = -sum(F.cosine_similarity(g.reshape(-1, 1), r.reshape(-1, 1), dim=0) for g, r in zip(gs, refs)) / 4
            loss = rec if count == 0 else rec + alpha * lg[0]
            loss.backward()
            count += 1
            refs = [r + (w.grad - r) / count for r, w in zip(refs, mine.decoder_weights())]  # running mean
            opt.step()
        total = 0.0
        for i in range(0, 4, batch):
            b = val[i:i + batch]
            rec = F.mse_loss(mine(b), b)
            gs = torch.autograd.grad(rec, mine.decoder_weights())
            lg = -sum(F.cosine_similarity(g.reshape(-1, 1), r.reshape(-1, 1), dim=0) for g, r in zip(gs, refs)) / 4
            total += (rec + alpha * lg[0]).item() * len(b)
        if total / 4 < best[0]:
            best = (total / 4, ({k: v.clone() for k, v in mine.state_dict().items()}, [r.clone() for r in refs], count))
    state, best_refs, best_count = best[1]
    for name, value in model.state_dict().items():
        if name.startswith("reference_grad"):
            assert torch.allclose(value, best_refs[int(name[-1])], rtol=1e-4, atol=1e-7), name
        elif name == "reference_count":
            assert int(value) == best_count
        else:
            assert torch.allclose(value, state[name], rtol=1e-4, atol=1e-6), name
    assert not model.training


def test_training_is_deterministic_and_leaves_the_global_rng_alone():
    images = _images(8, seed=3)
    before = torch.get_rng_state()
    a = train_gradcon(images, epochs=1, batch_size=4, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    b = train_gradcon(images, epochs=1, batch_size=4, seed=5)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    assert int(a.reference_count) == 2
    plain = train_gradcon(images, epochs=1, batch_size=4, seed=5, grad_loss_weight=0)
    assert int(plain.reference_count) == 2  # the plain CAE records its reference gradients too


def test_score_equals_the_authors_batch_size_one_loop():
    model, x = _model(), _images(5, size=32)
    parts = fisher.gradcon_components(model, x, batch_size=2)
    small = to_gradcon_input(x)
    for i in range(len(x)):  # eval.py: one image, ordinary backward, W_i.grad against the reference
        model.zero_grad()
        rec = F.mse_loss(model(small[i:i + 1]), small[i:i + 1])
        rec.backward()
        cos = [F.cosine_similarity(w.grad.view(-1, 1), r.view(-1, 1), dim=0)
               for w, r in zip(model.decoder_weights(), model.reference_gradients())]
        assert parts.reconstruction_error[i].item() == pytest.approx(rec.item(), rel=1e-5)
        assert parts.cosines[i].tolist() == pytest.approx([c.item() for c in cos], abs=1e-5)
        score = -rec.item() + 0.12 * sum(c.item() for c in cos) / 4
        assert fisher.gradcon_score(model, x[i:i + 1]).item() == pytest.approx(score, abs=1e-5)
    model.zero_grad(set_to_none=True)
    score = fisher.gradcon_score(model, x, beta=0.5)
    assert torch.allclose(score, -parts.reconstruction_error + 0.5 * parts.cosines.mean(1), atol=1e-6)
    assert torch.allclose(fisher.gradcon_anomaly_score(model, x), -fisher.gradcon_score(model, x))
    assert torch.allclose(fisher.reconstruction_error(model, x), parts.reconstruction_error, rtol=1e-5)
    assert torch.allclose(fisher.gradcon_score(model, x, beta=0), -parts.reconstruction_error)
    whole = fisher.gradcon_components(model, x, batch_size=None)
    assert torch.allclose(whole.cosines, parts.cosines, atol=1e-6)


def test_scores_leave_the_model_as_they_found_it():
    model, x = _model(), _images(3)
    model.train()
    model.get_parameter("up.2.weight").grad = torch.full_like(model.get_parameter("up.2.weight"), 0.5)
    model.get_parameter("down.0.weight").requires_grad_(False)
    before = snapshot(model)
    fisher.gradcon_components(model, x)
    fisher.gradcon_score(model, x)
    fisher.reconstruction_error(model, x)
    assert_same(before, snapshot(model))


def test_bad_input():
    model = _model()
    with pytest.raises(TypeError, match="GradConCAE"):
        fisher.gradcon_score(torch.nn.Linear(2, 2), torch.rand(1, 3, 28, 28))
    with pytest.raises(ValueError, match="takes 3"):
        fisher.gradcon_score(model, torch.rand(1, 1, 28, 28))
    with pytest.raises(ValueError, match="x\\[None\\]"):
        fisher.gradcon_score(model, torch.rand(3, 28, 28))
    with pytest.raises(ValueError, match="NaN"):
        fisher.gradcon_score(model, torch.full((1, 3, 28, 28), float("nan")))
    with pytest.raises(ValueError, match="beta"):
        fisher.gradcon_score(model, torch.rand(1, 3, 28, 28), beta=-1)
    with pytest.raises(ValueError, match="reference"):
        fisher.gradcon_score(GradConCAE(3), torch.rand(1, 3, 28, 28))
    with pytest.raises(ValueError, match="epochs"):
        train_gradcon(torch.rand(4, 3, 28, 28), epochs=0)
    with pytest.raises(ValueError, match="grad_loss_weight"):
        train_gradcon(torch.rand(4, 3, 28, 28), grad_loss_weight=-0.1)


def test_one_class_split():
    images = torch.arange(20.0).view(20, 1, 1, 1)
    labels = torch.tensor([0, 1, 2, 1] * 5)
    x, outlier = fisher.one_class_split(images, labels, 1, seed=0)
    assert len(x) == 20 and outlier.sum() == 10 and not outlier[:10].any()
    chosen = x[:, 0, 0, 0].long()
    assert (labels[chosen[:10]] == 1).all() and (labels[chosen[10:]] != 1).all()
    assert len(set(chosen[10:].tolist())) == 10  # drawn without replacement
    again, _ = fisher.one_class_split(images, labels, 1, seed=0)
    assert torch.equal(x, again)
    with pytest.raises(ValueError, match="inlier"):
        fisher.one_class_split(images, labels, 5)
    with pytest.raises(ValueError, match="as many"):
        fisher.one_class_split(images, torch.tensor([0] * 19 + [1]), 0)


def test_zoo_models_are_gradcon_autoencoders():
    for name, alpha in (("signs_gradcon", 0.03), ("signs_cae", 0.0)):
        spec = zoo.ZOO[name]
        assert spec.architecture == "GradConCAE" and spec.grad_loss_weight == alpha
        model = zoo.load_model(name, device="cpu", retrain=False)
        assert isinstance(model, GradConCAE) and int(model.reference_count) > 0
