"""_core.checks.all_finite: the one-reduction finiteness test equals the entry-wise one."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from inferml_course._core.checks import all_finite, check_float_tensor


@given(arrays(np.float32, st.integers(0, 64), elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
def test_all_finite_equals_the_entrywise_check(values):
    x = torch.from_numpy(values)
    assert all_finite(x) == bool(torch.isfinite(x).all())


@pytest.mark.parametrize("x, expected", [
    (torch.tensor([1.0, float("nan")]), False),
    (torch.tensor([float("inf"), float("-inf")]), False),    # the sum is NaN
    (torch.tensor([3e38, 3e38], dtype=torch.float32), True),  # the sum overflows, every entry is finite
    (torch.full((100,), 60000.0, dtype=torch.float16), True),
    (torch.zeros(0), True),
])
def test_all_finite_cases(x, expected):
    assert all_finite(x) is expected


def test_check_float_tensor_still_refuses_non_finite_images():
    x = torch.rand(2, 3, 4, 4)
    x[1, 2, 3, 3] = float("inf")
    with pytest.raises(ValueError, match="x contains NaN or infinite values"):
        check_float_tensor(x, "x", "(N, C, H, W)", dim=4)
