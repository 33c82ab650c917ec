"""Huffman coding (optimality against a brute force) and the structure-wise games."""
import heapq
import itertools

import pytest
import torch
from hypothesis import given, settings, strategies as st

from inferml_course import evaluate as ev
from inferml_course.evaluate._common import substrate_images

from _evaluate_models import region_setup
from _explain_models import images, small_cnn


def _brute_force_optimal_cost(counts) -> int:
    """Reference: the cheapest prefix code by trying every length vector that satisfies Kraft."""
    present = [c for c in counts if c > 0]
    n = len(present)
    if n == 1:
        return present[0]
    best = None
    for lengths in itertools.product(range(1, n), repeat=n):
        if sum(2.0 ** -l for l in lengths) <= 1.0:
            cost = sum(c * l for c, l in zip(present, lengths))
            best = cost if best is None else min(best, cost)
    return best


def _heap_huffman_cost(counts) -> int:
    """Reference: the classic heap construction's total cost (sum of merged weights)."""
    heap = [c for c in counts if c > 0]
    if len(heap) == 1:
        return heap[0]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


counts_strategy = st.lists(st.integers(0, 60), min_size=1, max_size=6).filter(lambda c: sum(c) > 0)


@settings(max_examples=80, deadline=None)
@given(counts=counts_strategy)
def test_property_huffman_is_an_optimal_prefix_code(counts):
    lengths = ev.huffman_code_lengths(torch.tensor([counts]))[0].tolist()
    cost = sum(c * l for c, l in zip(counts, lengths))
    assert cost == _brute_force_optimal_cost(counts)  # no prefix code is cheaper
    assert cost == _heap_huffman_cost(counts)
    present = [l for c, l in zip(counts, lengths) if c > 0]
    assert all(l == 0 for c, l in zip(counts, lengths) if c == 0)
    if len(present) > 1:
        assert sum(2.0 ** -l for l in present) == pytest.approx(1.0)  # Kraft equality: a full binary tree
    else:
        assert present == [1]


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(st.lists(st.integers(0, 1000), min_size=12, max_size=12).filter(lambda c: sum(c) > 0),
                      min_size=1, max_size=5))
def test_property_batched_huffman_equals_one_at_a_time(batch):
    counts = torch.tensor(batch)
    together = ev.huffman_code_lengths(counts)
    for row, lengths in zip(counts, together):
        assert torch.equal(ev.huffman_code_lengths(row[None])[0], lengths)
        assert int((row * lengths).sum()) == _heap_huffman_cost(row.tolist())


def test_huffman_textbook_example_and_canonical_code():
    counts = [45, 13, 12, 16, 9, 5]  # CLRS: a:45 b:13 c:12 d:16 e:9 f:5 -> 224 bits
    lengths = ev.huffman_code_lengths(torch.tensor([counts]))[0]
    assert int((torch.tensor(counts) * lengths).sum()) == 224
    code = ev.huffman_code(counts)
    words = list(code.values())
    assert len(words) == 6
    for a in words:  # prefix free
        for b in words:
            assert a == b or not b.startswith(a)
    assert {s: len(c) for s, c in code.items()} == {s: int(l) for s, l in enumerate(lengths)}


def test_huffman_bits_of_images():
    flat = torch.full((1, 3, 4, 4), 0.5)
    assert int(ev.huffman_bits(flat)[0]) == 48  # one symbol: one bit each
    two = torch.zeros(1, 1, 2, 2)
    two[0, 0, 0] = 1.0
    assert int(ev.huffman_bits(two)[0]) == 4
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    bits = ev.huffman_bits(x)
    h = ev.histograms(x)
    assert h.shape == (3, 256) and torch.equal(h.sum(1), torch.full((3,), 192))
    entropy = -(h / 192.0 * torch.log2((h / 192.0).clamp_min(1e-30))).sum(1) * 192
    assert torch.all(bits >= entropy - 1e-6) and torch.all(bits < entropy + 192)  # H <= L < H + 1 per symbol
    assert torch.equal(ev.symbols(torch.tensor([[0.0, 1.0, 0.5]])), torch.tensor([[0, 255, 128]]))


def test_huffman_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        ev.huffman_code_lengths(torch.tensor([[3, -1]]))
    with pytest.raises(ValueError, match="integers"):
        ev.huffman_code_lengths(torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        ev.huffman_code_lengths(torch.tensor([1, 2]))


def test_structure_curves_against_manual_images():
    model, x = small_cnn(), images(n=3, h=8, w=8)
    heat = torch.rand(3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    thresholds = (0.0, 0.3, 0.6)
    sub = substrate_images(model, x, "mean")
    scaled = (heat - heat.flatten(1).amin(1).view(-1, 1, 1)) / \
        (heat.flatten(1).amax(1) - heat.flatten(1).amin(1)).view(-1, 1, 1)
    with torch.no_grad():
        t = model(x).argmax(1)
    for mode in ("keep", "remove"):
        res = ev.structure_curves(model, x, heat, mode=mode, thresholds=thresholds, substrate="mean", batch_size=4)
        assert res.bit_ratio["map"].shape == (3, 5)
        for j, thr in enumerate(thresholds):
            region = scaled >= thr
            keep = region if mode == "keep" else ~region
            img = torch.where(keep[:, None], x, sub)
            with torch.no_grad():
                z = model(img)
            col = j + 1
            assert torch.allclose(res.scores["map"][:, col], torch.softmax(z, 1).gather(1, t[:, None])[:, 0],
                                  atol=1e-12)
            assert torch.equal(res.correct["map"][:, col], z.argmax(1) == t)
            assert torch.allclose(res.bit_ratio["map"][:, col],
                                  ev.huffman_bits(img).double() / ev.huffman_bits(x).double())
        whole, empty = (0, -1) if mode == "keep" else (-1, 0)
        assert torch.allclose(res.bit_ratio["map"][:, whole], torch.ones(3, dtype=torch.float64))
        assert torch.allclose(res.bit_ratio["map"][:, empty], ev.huffman_bits(sub).double() / ev.huffman_bits(x))
        assert res.correct["map"][:, whole].all()  # the whole image is classified as its own prediction
        bx, acc = res.curve()
        assert torch.all(bx.diff() >= 0) and 0 <= res.auc() <= 1
        assert "better" in res.table()


def test_structure_perfect_beats_inverted():
    model, x, perfect, _ = region_setup(n=6, h=8, w=8)
    maps = {"perfect": perfect, "inverted": -perfect}
    keep = ev.structure_curves(model, x, maps, target=0, mode="keep", substrate=0.5, output="logit")
    remove = ev.structure_curves(model, x, maps, target=0, mode="remove", substrate=0.5, output="logit")
    # keep mode (insertion): higher is better; remove mode (deletion): lower is better
    assert keep.auc("perfect") > keep.auc("inverted")
    assert remove.auc("perfect") < remove.auc("inverted")
    assert torch.all(keep.scores["perfect"][:, 1:-1].mean(0) >= keep.scores["inverted"][:, 1:-1].mean(0))


def test_structure_bad_input():
    model = small_cnn(dtype=torch.float32)
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="thresholds"):
        ev.structure_curves(model, x, torch.rand(2, 8, 8), thresholds=(0.5, 0.2))
    with pytest.raises(ValueError, match="thresholds"):
        ev.structure_curves(model, x, torch.rand(2, 8, 8), thresholds=(0.0, 1.5))
    with pytest.raises(ValueError, match="thresholds"):
        ev.structure_curves(model, x, torch.rand(2, 8, 8), thresholds=())
    with pytest.raises(ValueError, match="mode"):
        ev.structure_curves(model, x, torch.rand(2, 8, 8), mode="insert")
    with pytest.raises(ValueError, match="maps"):
        ev.structure_curves(model, x, torch.rand(2, 7, 8))


@pytest.mark.parametrize("batch_size", [1, 2, 4, 5, 7, 8, 10, 11])
def test_structure_curves_any_chunking_equals_one_pass(batch_size):
    # total = 1 map x 3 thresholds x 3 images = 9 jobs, then 3 substrate images: a chunk may start
    # inside the substrate tail (batch 5: starts 0, 5, 10), which once crashed under batch_size="auto"
    model, x = small_cnn(), images(n=3, h=8, w=8)
    heat = torch.rand(3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    for mode in ("keep", "remove"):
        one = ev.structure_curves(model, x, heat, mode=mode, thresholds=(0.0, 0.3, 0.6), batch_size=64)
        cut = ev.structure_curves(model, x, heat, mode=mode, thresholds=(0.0, 0.3, 0.6), batch_size=batch_size)
        for key in ("bit_ratio", "scores", "correct"):
            assert torch.allclose(getattr(cut, key)["map"].double(), getattr(one, key)["map"].double(), atol=1e-12)
