"""The shared image operations: the one IoU against sets, min-max."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from inferml_course._core.images import mask_iou, minmax


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=4, max_size=4 * 4).filter(lambda v: len(v) % 4 == 0))
def test_mask_iou_is_the_set_ratio(pairs):
    a = torch.tensor([p for p, _ in pairs]).view(-1, 4)
    b = torch.tensor([q for _, q in pairs]).view(-1, 4)
    inter = {(i, j) for i in range(a.shape[0]) for j in range(4) if a[i, j] and b[i, j]}
    union = {(i, j) for i in range(a.shape[0]) for j in range(4) if a[i, j] or b[i, j]}
    expected = len(inter) / len(union) if union else 1.0
    assert float(mask_iou(a, b)) == pytest.approx(expected)


def test_mask_iou_batches_empty_rule_and_refusals():
    a = torch.zeros(3, 2, 2, dtype=torch.bool)
    b = a.clone()
    a[0, 0, 0] = b[0, 0, 0] = True
    b[1, 1, 1] = True
    assert mask_iou(a, b).tolist() == [1.0, 0.0, 1.0]
    assert torch.isnan(mask_iou(a, b, empty=float("nan"))[2])
    with pytest.raises(TypeError, match="boolean"):
        mask_iou(a.float(), b)
    with pytest.raises(ValueError, match="same shape"):
        mask_iou(a, b[:2])


def test_minmax_per_map():
    m = torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]]])
    assert minmax(m).tolist() == [[[0.0, 1.0]], [[0.0, 0.0]]]
