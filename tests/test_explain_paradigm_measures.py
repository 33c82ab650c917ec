"""explain.paradigm_measures: per-image distances between the four paradigm maps (lesson 03)."""
import numpy as np
import torch

from inferml_course import evaluate, explain

from _explain_models import TwoChannelModel, images, small_cnn, two_squares


def test_measures_match_their_definitions_on_a_one_channel_model():
    model = small_cnn(in_channels=1, num_classes=10).eval()
    x = images(n=6, c=1, h=28, w=28)
    maps = explain.explanatory_paradigms(model, x)
    m = explain.paradigm_measures(maps)
    assert set(m) == {"rho", "empty", "strength", "hesitation"}
    assert all(isinstance(v, np.ndarray) and v.shape == (6,) for v in m.values())
    rho = evaluate.rank_correlation(explain.grad_cam(model, x), explain.contrast_cam(model, x))
    assert np.allclose(m["rho"], rho.numpy(), atol=1e-6)
    cf = explain.counterfactual_cam(model, x)
    assert (m["empty"] == (cf.flatten(1).amax(1) == 0).numpy()).all()
    q_is_p = explain.contrast_cam(model, x, contrast=maps["P"])
    assert np.allclose(m["strength"], q_is_p.flatten(1).amax(1).numpy())
    probs = torch.softmax(model(x), 1)
    assert np.allclose(m["hesitation"], (1 - probs.max(1).values).detach().numpy())


def test_hesitation_is_that_of_the_explained_class():
    model = TwoChannelModel().double().eval()
    x = two_squares()
    maps = explain.explanatory_paradigms(model, x, target=2, contrast=0)  # explain a class that is not predicted
    m = explain.paradigm_measures(maps)
    p2 = torch.softmax(model(x), 1)[0, 2].item()
    assert np.isclose(m["hesitation"][0], 1 - p2)
    assert m["empty"].dtype == bool
