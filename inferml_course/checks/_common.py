"""Shared wording of the exercise checkers, and how they judge a student's answer.

A checker judges the student's answer like any other input: before it compares anything, one of the
helpers below turns the answer into the form the comparison needs (one finite number, a tensor of a given
shape, a dict with given keys, a tuple of named parts, a word, a collection of keys) or fails with
``[TRY AGAIN]`` naming the answer, what was expected and what was got. So NaN, infinity, a string,
``None`` or ``...``, a wrong type, a wrong shape or dtype, a list of the wrong length or a dict with
missing keys never reach a comparison (where ``abs(nan - x) > tol`` is False and would pass).

:func:`checker` marks every ``check_*`` function: it records which arguments are the student's answers
(``tests/test_checks_bad_answers.py`` sweeps them) and decides how a verdict reaches the student. Inside,
:func:`passed` prints ``[PASS] ...`` and :func:`fail` raises ``AssertionError("[TRY AGAIN] ...")``, which
also stops the comparison. The decorated checker returns None either way (no ``Out: True`` echo) and, for a
student, never raises: a ``[TRY AGAIN]``, or any other exception raised while checking (from an odd object
the helpers let through, reworded as ``[TRY AGAIN]`` with the exception's message), is shown as a short
box (:func:`show_try_again`: HTML in Jupyter, plain text elsewhere, no traceback) and "Run All" goes on
to the next cell. Under strict mode, the environment variable ``INFERML_STRICT_CHECKS=1`` (the test run
sets it, see ``conftest.py``), the exception propagates instead: a wrong answer in a solution notebook
fails its cell and a bug in a checker stays visible in the tests.
"""
from __future__ import annotations

import functools
import html
import inspect
import math
import numbers
import os
from collections.abc import Iterable, Mapping

import torch

STRICT_ENV = "INFERML_STRICT_CHECKS"
PASS, TRY_AGAIN = "[PASS]", "[TRY AGAIN]"
#: Ends the [TRY AGAIN] of an exception a checker did not expect (``course.check_lesson`` refuses it).
REPORT = "please report this message"


def fail(message: str):
    """Stop the checker with ``[TRY AGAIN] message`` (a hint); :func:`checker` decides how it is shown."""
    raise AssertionError(f"{TRY_AGAIN} {message}")


def passed(message: str) -> None:
    print(f"{PASS} {message}")


def is_try_again(error: BaseException) -> bool:
    """Whether ``error`` is a checker's own ``[TRY AGAIN]`` (raised by :func:`fail`)."""
    return isinstance(error, AssertionError) and str(error).startswith(TRY_AGAIN)


def show_try_again(message: str) -> None:
    """Show a ``[TRY AGAIN] ...`` message without a traceback: a box in Jupyter (HTML, with the same text as
    its plain-text form), the plain text elsewhere."""
    try:
        from IPython import get_ipython
    except ImportError:
        shell = None
    else:
        shell = get_ipython()
    if shell is None:
        print(message)
        return
    from IPython.display import display

    hint = message[len(TRY_AGAIN):].strip() if message.startswith(TRY_AGAIN) else message
    box = ('<div style="border:1px solid #d97706;border-left:6px solid #d97706;border-radius:4px;'
           'background:#fffbeb;color:#1f2937;padding:6px 12px;margin:2px 0;font-family:sans-serif;'
           f'font-size:14px"><b style="color:#b45309">{TRY_AGAIN}</b> {html.escape(hint)}'
           '<div style="color:#6b7280;font-size:12px;margin-top:4px">Change your answer in the exercise cell, '
           'run it, then run this cell again. The cells below run either way.</div></div>')
    display({"text/plain": message, "text/html": box}, raw=True)


# ------------------------------------------------------------------------------ the checker decorator

def strict() -> bool:
    """Whether an unexpected exception inside a checker propagates (``INFERML_STRICT_CHECKS`` set, not 0)."""
    return os.environ.get(STRICT_ENV, "").strip().lower() not in ("", "0", "false", "no")


def checker(parts: tuple[str, ...] = (), **answers: str):
    """Mark an exercise checker: ``answers`` maps each argument that holds the student's answer to the name
    its messages use (``@checker(answer="accuracy")``; default ``answer="your answer"``); the other
    arguments are the context it recomputes from. ``parts`` names the items of an answer that is a tuple
    (``check_shortcut``'s ``(accuracy_drop, shortcut)``).

    The argument names are kept on the function as ``answers`` (a tuple) and ``parts``. Before the checker
    runs, an empty answer (``...`` or ``None``, or a tuple answer with an empty part) gets ``[TRY AGAIN]``,
    whatever the context holds. An exception other than the checker's own ``[TRY AGAIN]`` becomes
    ``[TRY AGAIN]`` with its type and message. The decorated checker returns None: a ``[PASS]`` is printed,
    a ``[TRY AGAIN]`` shown by :func:`show_try_again` and execution goes on; under :func:`strict` the
    exception propagates instead (the checker's own ``AssertionError("[TRY AGAIN] ...")``, or the unexpected
    one as it is).
    """
    answers = answers or {"answer": "your answer"}
    parts = tuple(parts)

    def mark(fn):
        signature = inspect.signature(fn)
        unknown = [a for a in answers if a not in signature.parameters]
        if unknown:
            raise TypeError(f"{fn.__name__} has no argument {unknown[0]!r} to mark as an answer")

        @functools.wraps(fn)
        def run(*args, **kwargs) -> None:
            try:
                given = signature.bind_partial(*args, **kwargs).arguments
                for argument, name in answers.items():
                    if argument in given:
                        value = require_answer(given[argument], name)
                        if parts and isinstance(value, (tuple, list)) and len(value) == len(parts):
                            for part, item in zip(parts, value):
                                require_answer(item, part)
                fn(*args, **kwargs)
            except Exception as error:
                if strict():
                    raise
                show_try_again(str(error) if is_try_again(error) else (
                    f"{TRY_AGAIN} checking {' and '.join(answers.values())} stopped with {type(error).__name__}: "
                    f"{error}. Check that your answer has the form the exercise asks for (if it has, {REPORT})."))

        run.answers, run.parts = tuple(answers), parts
        return run

    return mark


# ------------------------------------------------------------------------------ judging an answer

def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def describe(value) -> str:
    """A short description of what a student gave, for the 'got ...' of a message (never raises)."""
    try:
        if isinstance(value, bool):
            return f"the boolean {value}"
        if isinstance(value, numbers.Number):
            plain = int(value) if isinstance(value, numbers.Integral) else float(value) if isinstance(
                value, numbers.Real) else complex(value)
            return f"the number {plain!r}"
        if isinstance(value, torch.Tensor) or (hasattr(value, "shape") and hasattr(value, "dtype")):
            kind = "a tensor" if isinstance(value, torch.Tensor) else _a(type(value).__name__)
            return f"{kind} of shape {tuple(value.shape)} and dtype {value.dtype}"
        if isinstance(value, (str, bytes)):
            text = repr(value)
            return f"the string {text if len(text) <= 40 else text[:37] + '...'}"
        if isinstance(value, Mapping):
            keys = [repr(k) for k in list(value)[:6]]
            return f"a dict with keys [{', '.join(keys)}{', ...' if len(value) > 6 else ''}]"
        if isinstance(value, (list, tuple)):
            return f"a {type(value).__name__} of {len(value)} item{'s' if len(value) != 1 else ''}"
        if value is ...:
            return "..."
        return _a(type(value).__name__)
    except Exception:
        return _a(type(value).__name__)


def require_answer(answer, name: str):
    """Fail with a hint when an exercise cell still holds the placeholder ``...`` or ``None``."""
    if answer is None or answer is ...:
        fail(f"{name} is still empty: replace the ... with your answer.")
    return answer


def _index(flat_position: int, shape) -> str:
    index = []
    for size in reversed(tuple(shape)):
        index.append(flat_position % size)
        flat_position //= size
    return str(tuple(reversed(index))) if len(index) > 1 else str(index[0]) if index else "()"


def check_finite(t: torch.Tensor, name: str, nan_ok=False) -> torch.Tensor:
    """Fail when ``t`` holds an infinite value, or a NaN where ``nan_ok`` (a bool, or a bool tensor of
    ``t``'s shape marking where NaN is an accepted answer) does not allow it."""
    if not (t.is_floating_point() or t.is_complex()):
        return t
    for bad, what, hint in ((t.isinf(), "infinite", "a division by 0 or an overflow"),
                            (t.isnan() & ~torch.as_tensor(nan_ok, dtype=torch.bool), "NaN",
                             "0 / 0, log 0 or inf - inf")):
        if bad.any():
            count, first = int(bad.sum()), int(bad.flatten().nonzero()[0])
            where = f" (the first at index {_index(first, t.shape)})" if t.dim() else ""
            fail(f"{name} should hold finite numbers, got {count} {what} value{'s' if count > 1 else ''} of "
                 f"{t.numel()}{where}. Hint: it usually comes from {hint}.")
    return t


def _to_tensor(answer, name: str, what: str) -> torch.Tensor:
    require_answer(answer, name)
    if isinstance(answer, (str, bytes, Mapping, set, frozenset)):
        fail(f"{name} should be {what}, got {describe(answer)}.")
    try:
        t = torch.as_tensor(answer)
    except Exception as error:
        stack = isinstance(answer, (list, tuple)) and any(isinstance(item, torch.Tensor) for item in answer)
        hint = " Hint: torch.stack a list of tensors." if stack else ""
        fail(f"{name} should be {what}, got {describe(answer)} that is not a tensor of numbers ({error}).{hint}")
    return t.detach().cpu()


def _check_dtype(t: torch.Tensor, name: str, answer, integer: bool = False) -> None:
    if t.dtype == torch.bool or t.is_complex():
        fail(f"{name} should hold {'whole' if integer else 'real'} numbers, got {describe(answer)}.")


def _check_whole(t: torch.Tensor, name: str) -> None:
    if t.is_floating_point():
        whole = t == t.round()
        if not bool(whole.all()):
            first = int((~whole).flatten().nonzero()[0])
            fail(f"{name} should hold whole numbers, got {float(t.flatten()[first]):g}"
                 + (f" at index {_index(first, t.shape)}." if t.dim() else "."))


def as_tensor(answer, name: str, shape=None, flat: bool = False, dtype: str = "real", nan_ok=False,
              hint: str = "") -> torch.Tensor:
    """A detached CPU tensor of real numbers from an answer (a tensor, an array or a list of numbers).

    ``shape``: the shape it must have; with ``flat=True`` any tensor with that many values is accepted
    and reshaped to ``shape`` (1-D). ``dtype``: ``"real"`` (no bool, no complex) or ``"integer"`` (whole
    numbers, in an integer or a floating dtype). Infinite values always fail, NaN unless ``nan_ok`` (see
    :func:`check_finite`). ``hint`` ends the message of a wrong shape.
    """
    shape = None if shape is None else tuple(int(s) for s in shape)
    what = ("a tensor of numbers" if shape is None else f"a tensor of {math.prod(shape)} numbers" if flat
            else f"a tensor of numbers of shape {shape}")
    t = _to_tensor(answer, name, what)
    _check_dtype(t, name, answer, integer=dtype == "integer")
    if shape is not None:
        got = t.reshape(-1) if flat and t.numel() == math.prod(shape) else t
        if tuple(got.shape) != shape:
            fail(f"{name} should be {what}, got {describe(answer)}." + (f" {hint}" if hint else ""))
        t = got.reshape(shape)
    check_finite(t, name, nan_ok)
    if dtype == "integer":
        _check_whole(t, name)
    return t


def as_number(answer, name: str, nan_ok: bool = False) -> float:
    """One finite number from an answer (a Python or NumPy number, or a one-element tensor or array), else a
    hint. ``nan_ok``: NaN is an accepted answer (infinity never is)."""
    require_answer(answer, name)
    if isinstance(answer, numbers.Real) and not isinstance(answer, bool):
        try:
            value = float(answer)
        except Exception as error:
            fail(f"{name} should be one finite number, got {describe(answer)} ({error}).")
    else:
        if isinstance(answer, bool):
            fail(f"{name} should be a number, got {describe(answer)}.")
        t = _to_tensor(answer, name, "one number")
        if t.numel() != 1:
            fail(f"{name} should be one number, got {describe(answer)}.")
        _check_dtype(t, name, answer)
        value = float(t.reshape(()).item())
    if math.isinf(value) or (math.isnan(value) and not nan_ok):
        fail(f"{name} should be a finite number, got {value!r}.")
    return value


def as_int(answer, name: str, low: int | None = None, high: int | None = None) -> int:
    """One whole number (an int, or a float or one-element tensor holding one) in ``[low, high]``."""
    value = as_number(answer, name)
    if not value.is_integer():
        fail(f"{name} should be a whole number, got {value:g}.")
    if (low is not None and value < low) or (high is not None and value > high):
        fail(f"{name} should lie between {low if low is not None else '-inf'} and "
             f"{high if high is not None else 'inf'}, got {value:g}.")
    return int(value)


def as_text(answer, name: str, hint: str = "") -> str:
    """A non-empty string (stripped), else a hint."""
    require_answer(answer, name)
    if not isinstance(answer, str):
        fail(f"{name} should be a word (a string), got {describe(answer)}." + (f" {hint}" if hint else ""))
    if not answer.strip():
        fail(f"{name} is an empty string." + (f" {hint}" if hint else ""))
    return answer.strip()


def as_parts(answer, name: str, parts, what: str = "") -> tuple:
    """The items of an answer that is a tuple (or list) of ``len(parts)`` things, named ``parts``."""
    require_answer(answer, name)
    parts = tuple(parts)
    if not isinstance(answer, (tuple, list)) or len(answer) != len(parts):
        fail(f"{name} should be {what or f'{len(parts)} things'}: ({', '.join(parts)}), got {describe(answer)}.")
    return tuple(answer)


def as_mapping(answer, name: str, keys, value=None, form: str = "{key: value}", keys_hint: str = "") -> dict:
    """A dict ``form`` with exactly ``keys`` (described by ``keys_hint`` in messages); each value passed
    through ``value(v, label)`` when given (e.g. :func:`as_number`), ``label`` naming the entry."""
    require_answer(answer, name)
    keys = list(keys)
    described = keys_hint or keys
    if not isinstance(answer, Mapping):
        fail(f"{name} should be a dict {form} with the keys {described}, got {describe(answer)}.")
    try:
        missing, extra = [k for k in keys if k not in answer], [k for k in answer if k not in keys]
    except TypeError as error:  # a key that cannot be looked up
        fail(f"{name} should have the keys {described}, got a dict whose keys cannot be compared ({error}).")
    if missing or extra:
        fail(f"{name} should have exactly the keys {described}; got {len(answer)} key"
             f"{'s' if len(answer) != 1 else ''}: missing {missing}, unexpected {sorted(map(str, extra))}.")
    return {k: value(answer[k], f"{name}[{k!r}]") if value is not None else answer[k] for k in keys}


def as_keys(answer, name: str, allowed, allowed_name: str = "the allowed keys") -> set:
    """A set of keys from ``allowed``, given as a list, tuple or set (not a string, a dict or a tensor)."""
    require_answer(answer, name)
    if isinstance(answer, (str, bytes, Mapping, torch.Tensor)) or not isinstance(answer, Iterable) \
            or hasattr(answer, "shape"):
        fail(f"{name} should be a list (or set) of keys of {allowed_name}, got {describe(answer)}.")
    try:
        got = set(answer)
    except TypeError as error:
        fail(f"{name} should be a list (or set) of keys of {allowed_name}, got items that are not keys ({error}).")
    try:
        unknown = sorted(map(repr, (k for k in got if k not in allowed)))
    except TypeError as error:
        fail(f"{name} should hold keys of {allowed_name}, got items that cannot be looked up ({error}).")
    if unknown:
        example = next(iter(allowed), None)
        fail(f"{name} should hold keys of {allowed_name}, got {', '.join(unknown)}, which "
             f"{'are not keys' if len(unknown) > 1 else 'is not a key'} of {allowed_name}"
             + (f"; use keys such as {example!r}." if example is not None else "."))
    return got
