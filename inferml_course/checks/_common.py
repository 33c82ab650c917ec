"""Shared wording of the exercise checkers."""
from __future__ import annotations

import math
import numbers

import torch


def fail(message: str):
    raise AssertionError(f"[TRY AGAIN] {message}")


def passed(message: str) -> bool:
    print(f"[PASS] {message}")
    return True


def require_answer(answer, name: str):
    """Fail with a hint when an exercise cell still holds the placeholder ``...`` or ``None``."""
    if answer is None or answer is ...:
        fail(f"{name} is still empty: replace the ... with your answer.")
    return answer


def as_tensor(answer, name: str) -> torch.Tensor:
    require_answer(answer, name)
    try:
        return torch.as_tensor(answer)
    except Exception:
        fail(f"{name} should be a tensor or a list of numbers, got {type(answer).__name__}.")


def as_number(answer, name: str) -> float:
    """One finite number from an answer (a Python or NumPy number, or a one-element tensor), else a hint."""
    require_answer(answer, name)
    if isinstance(answer, torch.Tensor):
        if answer.numel() != 1:
            fail(f"{name} should be one number, got a tensor of shape {tuple(answer.shape)}.")
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        fail(f"{name} should be a number, got {type(answer).__name__}.")
    if not math.isfinite(float(answer)):
        fail(f"{name} should be a finite number, got {answer!r}.")
    return float(answer)
