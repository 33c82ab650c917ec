"""Lemma 1 of introspective learning: grad_W J_I = -grad_W y_I + grad_W y_hat + R, R shared by every question and
bounded by sqrt(2) (1 - p_hat) ||h||; checked against autograd and analytic limits."""
import pytest
import torch
import torch.nn.functional as F

from inferml_course import introspection as intro

from _explain_models import images, small_cnn


def test_gradient_equals_autograd_and_splits_exactly():
    model, x = small_cnn(), images(3, h=32, w=32)
    t = intro.lemma1_terms(model, x)
    k = model.last_layer.out_features
    for n in range(x.shape[0]):
        for q in range(k):
            j = F.cross_entropy(model(x[n:n + 1]), torch.tensor([q]))
            (gw,) = torch.autograd.grad(j, [model.last_layer.weight])
            torch.testing.assert_close(t["gradient"][n, q], gw, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(t["gradient"], t["relation"] + t["remainder"][:, None], atol=1e-14, rtol=0)
    # the relation term only touches the rows of y_hat and I: (delta_hat - delta_I) h^T
    n, hat = 0, int(t["predicted"][0])
    rows = t["relation"][n].norm(dim=-1)                   # (I, K)
    for q in range(k):
        expected = torch.zeros(k, dtype=torch.float64)
        if q != hat:
            expected[[hat, q]] = t["h"][n].norm()
        torch.testing.assert_close(rows[q], expected)


def test_remainder_is_shared_bounded_and_vanishes_for_a_confident_network():
    model, x = small_cnn(), images(4, h=32, w=32)
    t = intro.lemma1_terms(model, x)
    r = t["remainder"].flatten(1).norm(dim=1)
    assert bool((r <= t["bound"] + 1e-12).all())
    # a bias of 40 on class 2 makes every prediction class 2 with p > 1 - 1e-15: the remainder vanishes
    sharp = small_cnn()
    with torch.no_grad():
        sharp.last_layer.bias[2] += 40.0
    s = intro.lemma1_terms(sharp, x)
    assert bool((s["predicted"] == 2).all())
    ratio = s["remainder"].flatten(1).norm(dim=1) / s["gradient"].flatten(2).norm(dim=2).amax(1)
    assert bool((ratio < 1e-12).all()) and bool((s["bound"] < 1e-12 * s["h"].norm(dim=1)).all())


def test_two_classes_have_the_closed_form():
    # K = 2 and h known: R = (p - delta_hat) h^T with p_other = sigmoid(y_other - y_hat)
    model, x = small_cnn(num_classes=2), images(2, h=32, w=32)
    t = intro.lemma1_terms(model, x)
    y = model(x).detach()
    hat = y.argmax(1)
    other = 1 - hat
    gap = y.gather(1, other[:, None])[:, 0] - y.gather(1, hat[:, None])[:, 0]
    p_other = torch.sigmoid(gap)
    r_rows = t["remainder"].norm(dim=-1)                    # (N, K): |p_c - delta_hat c| ||h||
    torch.testing.assert_close(r_rows.gather(1, other[:, None])[:, 0], p_other * t["h"].norm(dim=1))
    torch.testing.assert_close(t["bound"], 2 ** 0.5 * p_other * t["h"].norm(dim=1))


def test_bad_input_and_mode_restored():
    model = small_cnn().train()
    with pytest.warns(UserWarning):
        intro.lemma1_terms(model, images(1, h=32, w=32))
    assert model.training
    with pytest.raises(ValueError):
        intro.lemma1_terms(small_cnn(), torch.rand(3, 32, 32))
    assert "lemma1_terms" in intro.__all__


def test_float64_images_on_a_float32_model_follow_the_dtype_rule():
    model, x = small_cnn(dtype=torch.float32), images(3, dtype=torch.float32)
    narrow = intro.lemma1_terms(model, x)
    wide = intro.lemma1_terms(model, x.double())
    assert torch.allclose(wide["gradient"], narrow["gradient"]) and torch.equal(wide["predicted"], narrow["predicted"])
    assert torch.allclose(intro.introspective_features(model, x.double()), intro.introspective_features(model, x))
