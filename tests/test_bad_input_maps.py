"""Bad input to the map utilities and the games: a clear error that names the argument, never a
silent wrong number (issue 15)."""
import pytest
import torch
from torch import nn

from inferml_course import evaluate as ev
from inferml_course import explain
from inferml_course.uncertainty import attribution as ua

from _explain_models import images, small_cnn
from _hygiene import assert_same, snapshot

NAN_MAP = torch.rand(2, 4, 4).index_put_((torch.tensor([0]), torch.tensor([1]), torch.tensor([1])),
                                         torch.tensor(float("nan")))


@pytest.mark.parametrize("mode", ["minmax", "absmax", "percentile"])
def test_normalize_maps_refuses_nan_instead_of_zeros(mode):
    with pytest.raises(ValueError, match="maps contains NaN"):
        explain.normalize_maps(NAN_MAP, mode)
    with pytest.raises(TypeError, match="maps must be a floating"):
        explain.normalize_maps(torch.ones(2, 4, 4, dtype=torch.long), mode)


def test_normalize_maps_percentile_domain():
    with pytest.raises(ValueError, match="percentile"):
        explain.normalize_maps(torch.rand(2, 4, 4), "percentile", percentile=0)
    with pytest.raises(ValueError, match="percentile"):
        explain.normalize_maps(torch.rand(2, 4, 4), "percentile", percentile=120)


def test_psi_refuses_nan_negative_maps_and_a_zero_temperature():
    with pytest.raises(ValueError, match="maps contains NaN"):
        ua.psi(NAN_MAP.abs())
    with pytest.raises(ValueError, match="non-negative"):
        ua.psi(-torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="tau2"):
        ua.psi(torch.rand(2, 4, 4), tau2=0)
    out = ua.psi(torch.rand(2, 4, 4), tau2=0.5)
    assert torch.allclose(out.flatten(1).sum(1), torch.ones(2))


def test_pixel_ranks_and_step_counts_refuse_what_they_cannot_rank():
    with pytest.raises(ValueError, match=r"maps must have shape \(N, H, W\)"):
        ev.pixel_ranks(torch.rand(4, 4))   # a single map without its batch dimension
    with pytest.raises(ValueError, match="maps contains NaN"):
        ev.pixel_ranks(NAN_MAP)
    with pytest.raises(ValueError, match="steps"):
        ev.step_counts(1024, 0)
    with pytest.raises(ValueError, match="steps must be an integer from 1 to 16"):
        ev.step_counts(16, 17)
    with pytest.raises(ValueError, match="pixels"):
        ev.step_counts(0, 4)


def test_insertion_deletion_caps_steps_at_the_pixel_count_and_leaves_the_model():
    model, x = small_cnn(), images(n=1, h=8, w=8)
    before = snapshot(model)
    with pytest.raises(ValueError, match="steps must be an integer from 1 to 64"):
        ev.insertion_deletion(model, x, torch.rand(1, 8, 8, dtype=x.dtype), steps=20_000, substrate=0.5)
    assert_same(before, snapshot(model))
    full = ev.insertion_deletion(model, x, torch.rand(1, 8, 8, dtype=x.dtype), steps=64, substrate=0.5)
    assert full.insertion["map"].shape == (1, 65)


def test_contrast_needs_two_classes():
    torch.manual_seed(0)
    one_class = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                              nn.Linear(4, 1)).eval()
    x = torch.rand(2, 3, 8, 8)
    for method in ("contrast_cam", "explanatory_paradigms"):
        with pytest.raises(ValueError, match="at least two classes"):
            getattr(explain, method)(one_class, x)


class _TupleModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 3)

    def forward(self, x):
        return (self.fc(x.flatten(1)),)


def test_a_model_returning_a_tuple_gets_a_wrapping_hint():
    from inferml_course.uncertainty import scores

    model, x = _TupleModel().eval(), torch.rand(2, 3, 8, 8)
    for call in (lambda: scores.msp(model, x), lambda: scores.uncertainty("gradtrust", model, x),
                 lambda: explain.saliency(model, x)):
        with pytest.raises(ValueError, match="got a tuple; wrap it"):
            call()
