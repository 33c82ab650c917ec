"""Shared wording of the exercise checkers."""
from __future__ import annotations

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
