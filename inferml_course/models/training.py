"""A deterministic training loop with a progress bar, and batched evaluation.

:func:`train_model` trains the classifier it is given (with :func:`train_vae`, which trains a
:class:`~inferml_course.models.architectures.SmallVAE` on its negative ELBO, the only functions here that
switch to training mode). The evaluation functions (:func:`predict_logits`, :func:`accuracy`,
:func:`accuracy_under_corruptions`) are defined at inference: they run in eval mode, warn when
they had to switch a dropout or batch-norm module, and restore every module's flag afterwards.

Inputs are checked before the model runs (:func:`inferml_course._core.checks.check_model_input`):
images are a batch (N, C, H, W), finite, not on the meta device; **dtype rule**: they are cast to the
dtype of the model's first floating parameter, so float64 images on a float32 model run in float32
(the same rule as :mod:`inferml_course.fisher`). ``labels`` are an integer tensor of shape (N,), one
class index in [0, K) per image (never broadcast). The model must return logits (N, K) (a tensor, not
a tuple or a dict).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._core.arguments import checked
from .._core.checks import (check_choice, check_images, check_labels, check_model_input, check_number, check_positive_int,
                            check_seed, model_reference_tensor)
from .._core.adapter import forward_images
from .._core.batching import check_batch_size, chunk_size
from .._core.modes import guarded
from .._core.targets import check_model_output
from ..datasets.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from .architectures import SmallVAE


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels (zero padding), batched: (N, C, H, W)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    rows = (dy.view(n, 1) + torch.arange(h)).view(n, 1, h, 1).expand(n, x.shape[1], h, w + 2 * max_shift)
    out = padded.gather(2, rows.to(x.device))
    cols = (dx.view(n, 1) + torch.arange(w)).view(n, 1, 1, w).expand(n, x.shape[1], h, w)
    return out.gather(3, cols.to(x.device))


@checked
def train_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int = 8,
                lr: float = 3e-3, batch_size: int = 128, weight_decay: float = 5e-4, seed: int = 0,
                max_shift: int = 0, progress: bool = True, description: str = "training") -> list[dict]:
    """Train ``model`` with AdamW and a one-cycle schedule; returns the per-epoch history.

    Deterministic for a given seed on a given machine: the global RNG (dropout) is forked and
    seeded, shuffling and augmentation use a local generator. The model's ``normalize``
    statistics are fitted to ``images`` first. ``images`` (N, C, H, W) in [0, 1], ``labels`` (N,).
    """
    images = check_model_input(model, images, "images")
    if next(model.parameters(), None) is None:
        raise ValueError("model has no parameters to train")
    k = getattr(model, "num_classes", None)
    labels = check_labels(labels, "labels", images.shape[0], k if isinstance(k, int) and k > 0 else None)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    lr = check_number(lr, "lr")
    weight_decay = check_number(weight_decay, "weight_decay", allow_zero=True)
    seed = check_seed(seed)
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative integer (pixels), got {max_shift!r}")
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        if hasattr(model, "normalize"):
            model.normalize.fit(images)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps = (len(images) + batch_size - 1) // batch_size
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
        history = []
        model.train()
        bar = tqdm(range(epochs), desc=description, disable=not progress, leave=False)
        for epoch in bar:
            order = torch.randperm(len(images), generator=gen)
            total, correct, loss_sum = 0, 0, 0.0
            for start in range(0, len(images), batch_size):
                idx = order[start:start + batch_size]
                x, y = images[idx], labels[idx]
                if max_shift:
                    x = random_shift(x, max_shift, gen)
                x, y = x.to(device), y.to(device)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += loss.item() * len(idx)
                correct += (logits.argmax(1) == y).sum().item()
                total += len(idx)
            history.append({"epoch": epoch + 1, "loss": loss_sum / total, "accuracy": correct / total})
            bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
        model.eval()
        for p in model.parameters():
            p.grad = None
    return history


@checked
def vae_loss(model: SmallVAE, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple:
    """The two terms of the negative ELBO of a :class:`SmallVAE` on images ``x`` (N, C, 32, 32) in [0, 1], each
    averaged over the images: the reconstruction term -E_q log p(x | z) of a Bernoulli likelihood (binary cross
    entropy summed over the pixels, one z per image drawn with ``generator``) and KL(q(z | x) || N(0, I))."""
    mean, log_var = model.encode(x)
    eps = torch.randn(mean.shape, generator=generator, device="cpu", dtype=mean.dtype).to(mean.device)
    z = mean + torch.exp(0.5 * log_var) * eps
    reconstruction = F.binary_cross_entropy(model.decode(z), x, reduction="sum") / len(x)
    kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum() / len(x)
    return reconstruction, kl


@checked
def train_vae(images: torch.Tensor, latent: int = 16, width: int = 12, epochs: int = 12, lr: float = 2e-3,
              batch_size: int = 128, seed: int = 0, progress: bool = True, description: str = "training VAE") -> SmallVAE:
    """Train a :class:`SmallVAE` on ``images`` (N, C, 32, 32) in [0, 1] by minimising the negative ELBO
    (:func:`vae_loss`) with Adam; returns it in eval mode.

    Deterministic for a given seed on a given machine: the initialisation comes from the seed (the global RNG
    is forked, so it is left as it was), the shuffling and the reparameterisation noise from a local generator.
    It runs on one CPU thread (the thread count is restored afterwards): the float reductions then do not
    depend on how many threads the caller has, so a retrain reproduces the shipped checkpoint bit for bit,
    and these small convolutions run faster on one thread of a shared 2-core CPU than on two.
    """
    check_images(images, "images")
    if images.shape[-2:] != (SmallVAE.input_size, SmallVAE.input_size):
        raise ValueError(f"images must have shape (N, C, 32, 32) for SmallVAE, got {tuple(images.shape)}")
    check_positive_int(latent, "latent")
    check_positive_int(width, "width")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    lr = check_number(lr, "lr")
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallVAE(images.shape[1], latent=latent, width=width).to(images.device)
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    bar = tqdm(range(epochs), desc=description, disable=not progress, leave=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        for _ in bar:
            total = 0.0
            for index in torch.randperm(len(images), generator=gen).split(batch_size):
                reconstruction, kl = vae_loss(model, images[index.to(images.device)], gen)
                loss = reconstruction + kl
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(index)
            bar.set_postfix(loss=f"{total / len(images):.1f}")
    finally:
        torch.set_num_threads(threads)
    optimizer.zero_grad(set_to_none=True)
    return model.eval()


@guarded(policy="eval")
@torch.no_grad()
@checked
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size="auto") -> torch.Tensor:
    """Logits (N, K) at inference, in batches on the model's device (``batch_size``: ``"auto"``, the
    measured fastest chunk, see :mod:`inferml_course._core.batching`; an int; or None, one pass).

    Defined in eval mode: a model left in training mode is run in eval mode with a warning, and
    every module's own flag is restored afterwards (see :mod:`inferml_course._core.modes`).
    ``images`` may live on any device: each batch moves to the model's device, in the model's dtype
    (see the module docstring); the logits come back on the CPU. Chunks run channels-last on a CPU
    (:func:`inferml_course._core.adapter.forward_images`: the same logits up to rounding, faster).
    """
    images = check_model_input(model, images, "images")
    check_batch_size(batch_size)
    reference = model_reference_tensor(model)
    device = images.device if reference is None else reference.device
    size = chunk_size(batch_size, images[:8].to(device), model=model, work=len(images))
    return torch.cat([check_model_output(forward_images(model, chunk.to(device)), chunk.shape[0]).cpu()
                      for chunk in images.split(size)])


def _check_accuracy_labels(labels, n: int) -> torch.Tensor:
    return check_labels(labels, "labels", n).cpu()


@guarded(policy="eval")
@checked
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size="auto") -> float:
    """Top-1 accuracy (higher is better) of ``model`` on ``images`` (N, C, H, W), ``labels`` (N,).

    ``labels``: an integer tensor (N,) of class indices in [0, K), one per image (checked before the model
    runs; the range against the K logits of the forward pass).
    """
    images = check_model_input(model, images, "images")
    labels = _check_accuracy_labels(labels, images.shape[0])
    logits = predict_logits(model, images, batch_size)
    check_labels(labels, "labels", images.shape[0], num_classes=logits.shape[1])
    return (logits.argmax(1) == labels).float().mean().item()


@guarded(policy="eval")
@checked
def accuracy_under_corruptions(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, corruptions=None,
                               severities=(1, 2, 3, 4, 5), seed: int = 0, progress: bool = True) -> torch.Tensor:
    """Accuracy (higher is better) for every corruption and severity: a tensor (len(corruptions), len(severities)).

    ``corruptions`` defaults to every name in :data:`inferml_course.datasets.CORRUPTIONS`. Every argument
    is checked before the first corruption runs.
    """

    check_model_input(model, images, "images")
    _check_accuracy_labels(labels, images.shape[0])
    if isinstance(corruptions, str):
        raise TypeError(f"corruptions must be a list of names, got the string {corruptions!r}; "
                        f"write corruptions=[{corruptions!r}]")
    corruptions = CORRUPTIONS if corruptions is None else tuple(corruptions)
    if not corruptions:
        raise ValueError("corruptions is empty; give None (all of them) or at least one name")
    for name in corruptions:
        check_choice(name, CORRUPTIONS, "corruption")
    severities = tuple(severities)
    if not severities or not all(isinstance(s, int) and not isinstance(s, bool) and s in SEVERITIES
                                  for s in severities):
        raise ValueError(f"severities must be a non-empty list of integers from 1 to 5, got {severities!r}")
    check_seed(seed)
    table = torch.empty(len(corruptions), len(severities))
    bar = tqdm(total=table.numel(), desc="corruptions", disable=not progress, leave=False)
    for i, name in enumerate(corruptions):
        for j, severity in enumerate(severities):
            table[i, j] = accuracy(model, corrupt(images, name, severity, seed=seed), labels)
            bar.update()
    bar.close()
    return table
