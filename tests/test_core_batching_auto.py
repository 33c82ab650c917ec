"""``batch_size="auto"`` chosen by measurement (_core.batching): the rule, the cache, hygiene, and results
that do not depend on the chunk size."""
import pytest
import torch
from torch import nn

from inferml_course._core import batching
from inferml_course.evaluate import insertion_deletion as games
from inferml_course.explain import gradients, perturbation

from _explain_models import images, small_cnn
from _hygiene import assert_same, snapshot


@pytest.fixture(autouse=True)
def _fresh_cache():
    batching.clear_batch_cache()
    yield
    batching.clear_batch_cache()


class Counting(nn.Module):
    """A linear classifier that counts its forward passes in a buffer and draws dropout noise."""

    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(3 * 8 * 8, 4))
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.head(x)


def _count_measures(monkeypatch):
    calls = []
    real = batching._measure

    def counted(model, x, backward):
        calls.append((tuple(x.shape[1:]), backward))
        return real(model, x, backward)

    monkeypatch.setattr(batching, "_measure", counted)
    return calls


def test_explicit_int_and_none_win_over_measurement(monkeypatch):
    calls = _count_measures(monkeypatch)
    model, x = small_cnn(), images(4)
    assert batching.check_batch_size(7, x, model=model, work=10 ** 6) == 7
    assert batching.check_batch_size(None, x, model=model, work=10 ** 6) is None
    assert batching.chunk_size(None, x, model=model) > 10 ** 9
    assert batching.check_batch_size("auto") == "auto"  # validated, resolved later
    assert calls == []


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "fast", "AUTO"])
def test_bad_batch_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="batch_size must be a positive integer, 'auto' or None"):
        batching.check_batch_size(bad, images(2), model=small_cnn())


def test_measured_once_per_key_and_cleared(monkeypatch):
    calls = _count_measures(monkeypatch)
    model = small_cnn(dtype=torch.float32)
    x16, x8 = images(4, dtype=torch.float32), images(4, h=8, w=8, dtype=torch.float32)
    first = batching.auto_batch_size(model, x16, work=10 ** 6)
    assert first in batching._candidates(x16)[1]
    assert batching.auto_batch_size(model, x16[:2], work=10 ** 6) == first  # same key: cached
    assert len(calls) == 1
    batching.auto_batch_size(model, x16, work=10 ** 6, backward=True)   # backward is its own key
    batching.auto_batch_size(model, x8, work=10 ** 6)                    # so is another image shape
    assert calls == [((3, 16, 16), False), ((3, 16, 16), True), ((3, 8, 8), False)]
    batching.auto_batch_size(small_cnn(dtype=torch.float32), x16, work=10 ** 6)  # another model
    assert len(calls) == 4
    batching.clear_batch_cache()
    batching.auto_batch_size(model, x16, work=10 ** 6)
    assert len(calls) == 5


def test_small_work_runs_in_one_pass_without_measuring(monkeypatch):
    calls = _count_measures(monkeypatch)
    x = images(4, h=32, w=32)
    assert batching.auto_batch_size(small_cnn(), x, work=200) == 200
    assert batching.auto_batch_size(small_cnn(), x, work=batching.MEASURE_FROM // 1024) == 256
    assert calls == []


def test_rule_without_a_model_or_with_batch_norm_training(monkeypatch):
    calls = _count_measures(monkeypatch)
    x = images(4, h=32, w=32)
    rule = batching.AUTO_PIXELS["cpu"] // (32 * 32)
    assert batching.auto_batch_size(None, x, work=10 ** 6) == rule
    assert batching.auto_batch_size(small_cnn().train(), x, work=10 ** 6) == rule  # the chunk would change BN
    assert calls == []


def test_an_ensemble_list_is_measured_on_its_first_member(monkeypatch):
    calls = _count_measures(monkeypatch)
    members = [small_cnn(dtype=torch.float32, seed=s) for s in range(2)]
    size = batching.auto_batch_size(members, images(2, dtype=torch.float32), work=10 ** 6)
    assert size >= 1 and len(calls) == 1
    assert members[0] in batching._CACHE and members[1] not in batching._CACHE


@pytest.mark.parametrize("backward", [False, True])
def test_measuring_leaves_model_rng_and_inputs_untouched(backward):
    model = Counting().train()  # dropout draws random numbers; the buffer changes in every forward
    model.head[2].weight.grad = torch.full_like(model.head[2].weight, 0.25)
    x = torch.rand(3, 3, 8, 8)
    x_before, before, rng = x.clone(), snapshot(model), torch.get_rng_state()
    size = batching.auto_batch_size(model, x, work=10 ** 6, backward=backward)
    assert size >= 8
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(x, x_before) and not x.requires_grad
    assert_same(before, snapshot(model))


def test_measuring_restores_buffers_when_the_model_raises():
    class Breaks(Counting):
        def forward(self, x):
            out = super().forward(x)
            if x.shape[0] > 8:
                raise RuntimeError("too big")
            return out

    model = Breaks().eval()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="too big"):
        batching.auto_batch_size(model, torch.rand(2, 3, 8, 8), work=10 ** 6)
    assert_same(before, snapshot(model))


def test_large_images_are_capped_by_the_memory_budget():
    x = torch.rand(1, 3, 224, 224)
    cap = batching.MAX_PIXELS["cpu"] // (224 * 224)
    assert batching.memory_cap(x) == cap == 10
    assert batching._candidates(x) == (2, [1, 2, 4])  # the rule's 2 images, half and double it
    assert batching._candidates(torch.rand(1, 3, 32, 32)) == (128, [64, 128, 256])
    assert batching._candidates(torch.rand(1, 3, 64, 64)) == (32, [16, 32, 64])
    assert batching.auto_batch_size(None, x) == batching.AUTO_PIXELS["cpu"] // (224 * 224)


def test_row_chunk_keeps_feature_work_within_the_element_budget():
    assert batching.row_chunk(5, rows=100, per_row=10) == 5
    assert batching.row_chunk(None, rows=100, per_row=10) == 100
    assert batching.row_chunk("auto", rows=100, per_row=10) == 100
    assert batching.row_chunk("auto", rows=10 ** 6, per_row=1000) == batching.MAX_ELEMENTS // 1000
    assert batching.row_chunk("auto", rows=0, per_row=1000) == 1
    with pytest.raises(ValueError):
        batching.row_chunk(0, rows=3, per_row=1)


def test_batches_split_by_the_resolved_size(monkeypatch):
    monkeypatch.setattr(batching, "_measure", lambda model, x, backward: 3)
    monkeypatch.setattr(batching, "MEASURE_FROM", 0)
    t = torch.arange(10.0).view(10, 1, 1, 1)
    chunks = batching.batches(t, "auto", model=small_cnn())
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    assert torch.equal(torch.cat(chunks), t)
    assert batching.batches(t, None) == (t,)


@pytest.fixture
def odd_chunks(monkeypatch):
    """Every measured "auto" size becomes 5 and every call measures, so "auto" cuts the work unevenly."""
    monkeypatch.setattr(batching, "_measure", lambda model, x, backward: 5)
    monkeypatch.setattr(batching, "MEASURE_FROM", 0)


@pytest.mark.parametrize("method", [
    lambda m, x, bs: perturbation.occlusion(m, x, target=1, window=4, stride=4, batch_size=bs),
    lambda m, x, bs: perturbation.rise(m, x, target=1, n_masks=40, batch_size=bs),
    lambda m, x, bs: gradients.integrated_gradients(m, x, target=1, steps=12, batch_size=bs),
    lambda m, x, bs: gradients.smoothgrad(m, x, target=1, samples=7, batch_size=bs),
    lambda m, x, bs: games(
        m, x, torch.rand(x.shape[0], 16, 16, generator=torch.Generator().manual_seed(3), dtype=x.dtype),
        target=1, steps=9, substrate="black", batch_size=bs).deletion["map"],
], ids=["occlusion", "rise", "integrated_gradients", "smoothgrad", "deletion"])
def test_auto_gives_the_result_of_one_pass(odd_chunks, method):
    model, x = small_cnn(), images(3)
    auto, whole, explicit = method(model, x, "auto"), method(model, x, None), method(model, x, 4)
    torch.testing.assert_close(auto, whole, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(explicit, whole, rtol=1e-9, atol=1e-12)


def test_measurement_keeps_the_rule_unless_another_size_is_clearly_faster(monkeypatch):
    """The search is a window around the pixel rule (so a timing disturbed by other jobs cannot pick a tiny
    chunk), timed in CPU seconds; the rule's chunk wins ties within 5 %."""
    x = torch.rand(4, 3, 32, 32)
    for per_image, expected in (({64: 1.0, 128: 1.04, 256: 1.2}, 128), ({64: 0.8, 128: 1.0, 256: 1.2}, 64),
                                ({64: 1.3, 128: 1.0, 256: 0.9}, 256)):
        seen, clock = [], {"t": 0.0, "reading": 0}

        class Model(torch.nn.Module):
            def forward(self, inp):
                seen.append(inp.shape[0])
                return inp.flatten(1)[:, :2]

        def process_time(per_image=per_image, seen=seen, clock=clock):
            # read twice per pass: before it (nothing ran yet) and after it (the pass took n * per-image)
            clock["reading"] += 1
            if clock["reading"] % 2 == 0:
                clock["t"] += per_image[seen[-1]] * seen[-1]
            return clock["t"]

        monkeypatch.setattr(batching.time, "process_time", process_time)
        batching.clear_batch_cache()
        assert batching.auto_batch_size(Model(), x, work=10 ** 6) == expected, per_image
        assert set(seen) == {64, 128, 256}
