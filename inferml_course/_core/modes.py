"""The mode policy shared by every family (one policy, everywhere).

1. **Never switch a mode silently.** A method runs the model in the mode the user left it in. When
   a dropout or batch-norm module is in training mode it warns once per call (the result is random,
   batch norm mixes the samples of a batch). This is ``policy="as_is"``: explainers (gradients,
   CAMs, perturbation and indirect methods, ``explain.explain``), VOICE, the evaluation games
   (masking, insertion/deletion, structure), attacks (FGSM, PGD, robustness curves) and the causal
   interventions.
2. **Methods defined only at inference** run in eval mode and *say so* with a warning
   ("<method> is defined at inference, so this call runs it in eval mode"): ``policy="eval"``.
   These are the deterministic uncertainty scores (``uncertainty.scores``, ``uncertainty.trust``,
   deep ensembles), Fisher information (per-sample gradients through :mod:`torch.func` need batch
   norm in eval mode), penultimate features and feature statistics (Mahalanobis, embeddings),
   introspective features and reflection inference, uncertainty attribution (its Bayesian model
   has fixed posterior samples), membership queries, and ``models.predict_logits`` / ``accuracy``.
3. **MC dropout** (``policy="mc_dropout"``, :func:`mc_dropout_mode`) is its own definition: eval
   mode everywhere except the dropout modules, which sample. A training-mode batch norm is
   switched to eval with a warning; dropout modules never cause a warning.
4. **Nothing changes.** Every module's own ``training`` flag is saved and restored (never
   ``model.train(was)``, which flattens the flags of the submodules), and every ``state_dict``
   value is unchanged after any call, in either mode, also when the call raises: the running
   statistics of a batch norm in training mode (``running_mean``, ``running_var``,
   ``num_batches_tracked``) are snapshot before the call and written back afterwards. The
   snapshot is taken only when some batch norm is in training mode, so eval-mode calls cost
   nothing.

:class:`model_guard` is the one context manager that does all of this; :func:`guarded` applies it
to a public function (one decorator line, signature and docstring kept). Guards nest: an inner
guard governs only the modules no outer guard holds (the outermost public function's policy
applies), so a call warns once, and :func:`check_mode` is silent inside a guard. Models that a
function builds and trains itself (``models.train_model``, shadow models, reflection networks,
temperature fitting) are outside this policy; no inference method trains the user's model.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import warnings
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["save_modes", "restore_modes", "eval_mode", "check_mode", "model_guard", "guarded", "POLICIES",
           "DROPOUT_TYPES", "dropout_modules", "mc_dropout_mode"]

POLICIES = ("as_is", "eval", "mc_dropout")

_DROPOUT = nn.modules.dropout._DropoutNd
_NORM = nn.modules.batchnorm._NormBase  # batch norm (and instance norm with running statistics)
_MODE_DEPENDENT = (_DROPOUT, _NORM)
_RUNNING = ("running_mean", "running_var", "num_batches_tracked")

#: ids of the modules held by the guards active in this context (so nested guards do nothing)
_HELD: contextvars.ContextVar[frozenset] = contextvars.ContextVar("inferml_course_guarded", default=frozenset())


def save_modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """Every module of ``model`` with its ``training`` flag."""
    return [(m, m.training) for m in model.modules()]


def restore_modes(saved) -> None:
    """Undo :func:`save_modes`."""
    for module, flag in saved:
        module.training = flag


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module in eval mode; on exit restore each module's own ``training`` flag (also on errors).

    Silent: only for models a function builds itself, or inside a :class:`model_guard` that has
    already warned. A public function running a user's model uses :func:`guarded` instead.
    """
    saved = save_modes(model)
    try:
        model.eval()
        yield model
    finally:
        restore_modes(saved)


def _training_modules(model: nn.Module, types=_MODE_DEPENDENT) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, types) and m.training]


def _as_is_message(method: str) -> str:
    return (f"{method}: the model is in training mode, so dropout makes the result random and batch-norm layers "
            "mix the samples of a batch (their running statistics are restored afterwards). Call model.eval() "
            "first unless that is what you want.")


def _eval_message(method: str) -> str:
    return (f"{method}: the model is in training mode; {method} is defined at inference, so this call runs it in "
            "eval mode (every module's flag is restored afterwards). Call model.eval() first to silence this.")


def _mc_dropout_message(method: str) -> str:
    return (f"{method}: batch-norm layers of the model are in training mode; MC dropout is defined with batch norm "
            "at inference, so this call runs them in eval mode and only the dropout modules sample (every "
            "module's flag is restored afterwards).")


def check_mode(model: nn.Module, method: str) -> None:
    """Warn (never switch modes silently) when a dropout or batch-norm layer of ``model`` is in training mode.

    Does nothing inside a :class:`model_guard` holding ``model`` (the guard has warned already).
    """
    if id(model) in _HELD.get():
        return
    if _training_modules(model):
        warnings.warn(_as_is_message(method), stacklevel=3)


def _roots(model) -> list[nn.Module]:
    """The modules a guard holds: a module, or the modules of a list / tuple (an ensemble); others are ignored."""
    if isinstance(model, nn.Module):
        return [model]
    if isinstance(model, (list, tuple)):
        return [m for m in model if isinstance(m, nn.Module)]
    return []


class model_guard:
    """Run a user's model under the mode policy (see the module docstring); restore everything on exit.

    ``with model_guard(model, "saliency"):`` ... ``policy``: ``"as_is"`` (warn when a dropout or
    batch-norm module is in training mode, run as is, write the batch-norm running statistics
    back afterwards), ``"eval"`` (warn and run in eval mode) or ``"mc_dropout"`` (warn about
    training-mode batch norm only and run it in eval mode; the method then uses
    :func:`mc_dropout_mode`). On exit, also when the body raises, every module's ``training``
    flag and every snapshot buffer are restored. ``model`` may be a module or a list of modules.
    """

    def __init__(self, model, method: str = "this method", policy: str = "as_is", stacklevel: int = 2):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.roots = _roots(model)
        self.method, self.policy, self.stacklevel = method, policy, stacklevel
        self._token = None
        self._modes: list = []
        self._buffers: list = []

    def __enter__(self):
        held = _HELD.get()
        new = [m for root in self.roots for m in root.modules() if id(m) not in held]
        if not new:  # an outer guard holds every module already: it has warned and will restore
            return self
        self._modes = [item for root in self.roots for item in save_modes(root)]
        self._token = _HELD.set(held | {id(m) for m in new})
        watch = (_NORM,) if self.policy == "mc_dropout" else _MODE_DEPENDENT
        training = [m for m in new if isinstance(m, watch) and m.training]
        if training:
            message = {"as_is": _as_is_message, "eval": _eval_message, "mc_dropout": _mc_dropout_message}[self.policy]
            warnings.warn(message(self.method), stacklevel=self.stacklevel + 1)
            if self.policy == "as_is":
                self._buffers = [(buf, buf.clone()) for m in training if isinstance(m, _NORM)
                                 for name in _RUNNING if isinstance(buf := getattr(m, name, None), torch.Tensor)]
            elif self.policy == "eval":
                for m in new:  # every module not held by an outer guard, as model.eval() would
                    m.training = False
            else:
                for m in training:
                    m.training = False
        return self

    def __exit__(self, *exc) -> None:
        if self._token is None:
            return
        try:
            with torch.no_grad():
                for buf, saved in self._buffers:
                    buf.copy_(saved)
            restore_modes(self._modes)
        finally:
            _HELD.reset(self._token)
            self._token, self._modes, self._buffers = None, [], []


def guarded(method: str | None = None, *, policy: str = "as_is", arg: str = "model"):
    """Decorator: run the public function inside :class:`model_guard` on its argument ``arg``.

    ``method`` names the function in the warning (default: its ``__name__``). The signature and
    the docstring are kept (:func:`functools.wraps`). ``arg="self"`` guards a module's own method.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")

    def decorate(fn):
        signature = inspect.signature(fn)
        names = list(signature.parameters)
        if arg not in names:
            raise TypeError(f"guarded: {fn.__qualname__} has no argument {arg!r}")
        index = names.index(arg)
        default = signature.parameters[arg].default
        name = method or fn.__qualname__

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            model = args[index] if index < len(args) else kwargs.get(arg, default)
            with model_guard(model, name, policy, stacklevel=2):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


DROPOUT_TYPES = (nn.modules.dropout._DropoutNd,)


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """Every dropout module (Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout) of ``model``."""
    return [m for m in model.modules() if isinstance(m, DROPOUT_TYPES)]


@contextlib.contextmanager
def mc_dropout_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode everywhere except the dropout modules, which sample (train mode).

    Batch norm therefore keeps using (and never updates) its running statistics. Every module's
    own flag is restored on exit, also when the body raises.
    """
    drops = dropout_modules(model)
    if not any(m.p > 0 for m in drops):
        raise ValueError("model has no dropout module with p > 0, so MC dropout would return S identical "
                         "predictions; use a model with nn.Dropout layers (e.g. SmallCNN)")
    saved = save_modes(model)
    try:
        model.eval()
        for m in drops:
            m.train()
        yield model
    finally:
        restore_modes(saved)
