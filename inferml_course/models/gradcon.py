"""GradCon (Kwon, Prabhushankar, Temel and AlRegib, ECCV 2020): a convolutional autoencoder trained with a
gradient-alignment constraint, as in the authors' code (``olivesgatech/gradcon-anomaly``; see
``reference/original-methods.md`` section 5). The anomaly *score* lives in :mod:`inferml_course.fisher.gradcon`.

* :class:`GradConCAE`: the authors' CAE for 28 x 28 inputs (4 strided convolutions down, 4 transposed
  convolutions up, sigmoid output). It also holds, as buffers (so they travel in the state dict, as the
  authors' checkpoint holds ``ref_grad``), the running average of the training gradients of the 4 decoder
  weights, ``reference_grad0`` ... ``reference_grad3``, and how many updates they average
  (``reference_count``).
* :func:`gradient_alignment_loss`: ``L_grad = -(1/L) sum_i cos(vec g_i, vec g_bar_i)``.
* :func:`gradcon_losses`: ``L_rec`` (mean squared error over batch and pixels) and ``L_grad`` of one batch,
  with the decoder gradients taken with ``create_graph=True`` (so ``L_grad`` is differentiable: a
  second-order loss).
* :func:`train_gradcon`: the authors' loop: ``L = L_rec + alpha L_grad`` (``alpha = 0.03``), ``L_grad = 0``
  on the very first iteration (no history yet), Adam (lr 1e-3), batches of 64; after each
  ``loss.backward()`` the reference average takes in the decoder weights' ``.grad`` of the **total** loss;
  it is never reset between epochs. The epoch kept is the one with the lowest total validation loss
  (``L_rec + alpha L_grad`` on held-out inliers, reference at that point), with its reference gradients.

Our choices (exposed as arguments): the number of epochs (the authors' default is 1000; ours are set in the
zoo), the seed (initialisation and shuffling, a local generator), and ``to_gradcon_input``: our 32 x 32 signs
are resized to 28 x 28 with antialiased bilinear interpolation (the authors resize CIFAR-10 with PIL's
ANTIALIAS filter). ``grad_loss_weight=0`` trains the plain CAE (the reconstruction-only baseline) with the
same loop; its reference average is still recorded, so the same score can be computed on it.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_images, check_number, check_positive_int, check_seed

__all__ = ["GradConCAE", "to_gradcon_input", "gradient_alignment_loss", "gradcon_losses", "train_gradcon"]


class GradConCAE(nn.Module):
    """The authors' convolutional autoencoder, input and output ``(N, C, 28, 28)`` in [0, 1].

    Encoder ``down``: Conv(C->32, k4, s2, p2)-ReLU, Conv(32->32)-ReLU, Conv(32->64)-ReLU, Conv(64->64)-ReLU
    (28 -> 15 -> 8 -> 5 -> 3). Decoder ``up``: ConvT(64->64, k4, s2, p2)-ReLU, ConvT(64->32, p1)-ReLU,
    ConvT(32->32, p2)-ReLU, ConvT(32->C, p1)-Sigmoid (3 -> 4 -> 8 -> 14 -> 28). No normalisation layers,
    no dropout (so train and eval mode compute the same function).
    """

    input_size = 28

    def __init__(self, in_channels: int = 3):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        self.in_channels = in_channels
        self.down = nn.Sequential(
            nn.Conv2d(in_channels, 32, 4, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(32, 32, 4, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(64, 64, 4, stride=2, padding=2), nn.ReLU(),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=2), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, stride=2, padding=2), nn.ReLU(),
            nn.ConvTranspose2d(32, in_channels, 4, stride=2, padding=1), nn.Sigmoid(),
        )
        for i, name in enumerate(self.decoder_weight_names):
            self.register_buffer(f"reference_grad{i}", torch.zeros_like(self.get_parameter(name)))
        self.register_buffer("reference_count", torch.zeros((), dtype=torch.long))

    #: the parameters whose gradients GradCon uses: the weights of the 4 transposed convolutions
    decoder_weight_names = ("up.0.weight", "up.2.weight", "up.4.weight", "up.6.weight")

    def decoder_weights(self) -> list[nn.Parameter]:
        return [self.get_parameter(name) for name in self.decoder_weight_names]

    def reference_gradients(self) -> list[torch.Tensor]:
        """The running averages g_bar_i of the training gradients, one per decoder weight (same shapes)."""
        return [getattr(self, f"reference_grad{i}") for i in range(len(self.decoder_weight_names))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"GradConCAE takes (N, C, {self.input_size}, {self.input_size}) inputs, got shape "
                             f"{tuple(x.shape)}; resize with to_gradcon_input(x)")
        return self.up(self.down(x))


@checked
def to_gradcon_input(x: torch.Tensor, size: int = GradConCAE.input_size) -> torch.Tensor:
    """Images ``(N, C, H, W)`` in [0, 1] resized to ``(N, C, size, size)`` (antialiased bilinear; unchanged
    when already that size). Our choice for the authors' PIL ANTIALIAS resize of 32 x 32 images to 28 x 28."""
    check_images(x, "x")
    check_positive_int(size, "size")
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


@checked
def gradient_alignment_loss(grads, reference) -> torch.Tensor:
    """``L_grad = -(1/L) sum_i cos(vec grads[i], vec reference[i])`` (a scalar in [-1, 1]).

    ``grads`` and ``reference`` are sequences of L tensors, pairwise of the same shape. The cosine is
    :func:`torch.nn.functional.cosine_similarity` of the flattened tensors (eps 1e-8), as in the authors' code,
    so a zero reference gives a cosine of 0.
    """
    grads, reference = list(grads), list(reference)
    if not grads or len(grads) != len(reference):
        raise ValueError(f"grads and reference must be non-empty sequences of the same length, got {len(grads)} "
                         f"and {len(reference)}")
    total = 0.0
    for i, (g, r) in enumerate(zip(grads, reference)):
        if g.shape != r.shape:
            raise ValueError(f"grads[{i}] has shape {tuple(g.shape)} but reference[{i}] has {tuple(r.shape)}")
        total = total - F.cosine_similarity(g.reshape(-1, 1), r.reshape(-1, 1).to(g.dtype), dim=0)[0]
    return total / len(grads)


@checked
def gradcon_losses(model: GradConCAE, x: torch.Tensor, create_graph: bool = True):
    """``(L_rec, L_grad)`` of one batch ``x`` (N, C, 28, 28): the mean squared reconstruction error and the
    gradient-alignment loss of the decoder gradients of ``L_rec`` against the model's reference average.
    With ``create_graph=True`` both are differentiable with respect to the parameters (second order)."""
    recon = model(x)
    rec = F.mse_loss(recon, x)
    weights = model.decoder_weights()
    grads = torch.autograd.grad(rec, weights, create_graph=create_graph, retain_graph=True)
    return rec, gradient_alignment_loss(grads, model.reference_gradients())


def _update_reference(model: GradConCAE, grads) -> None:
    """Running mean over every update so far (the authors' ``AverageMeter`` with n = 1)."""
    count = int(model.reference_count) + 1
    with torch.no_grad():
        for ref, g in zip(model.reference_gradients(), grads):
            ref.mul_((count - 1) / count).add_(g.detach(), alpha=1.0 / count)
        model.reference_count.fill_(count)


def _validation_loss(model: GradConCAE, x: torch.Tensor, grad_loss_weight: float, batch_size: int) -> float:
    total = 0.0
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        rec, align = gradcon_losses(model, batch, create_graph=False)
        total += float((rec + grad_loss_weight * align).detach()) * len(batch)
    return total / len(x)


@checked
def train_gradcon(images: torch.Tensor, val_images: torch.Tensor | None = None, epochs: int = 20,
                  grad_loss_weight: float = 0.03, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
                  progress: bool = False, description: str = "training GradCon") -> GradConCAE:
    """Train a :class:`GradConCAE` on inlier ``images`` (N, C, H, W) in [0, 1] with the authors' recipe.

    Args:
        images: the inliers (resized with :func:`to_gradcon_input` when not 28 x 28).
        val_images: held-out inliers; the epoch with the lowest total validation loss is kept (None: the last).
        epochs: passes over ``images`` (the authors run 1000; a choice).
        grad_loss_weight: alpha in ``L = L_rec + alpha L_grad`` (0.03 in the paper; 0 = the plain CAE).
        lr, batch_size: Adam's learning rate and the batch size (1e-3 and 64, the authors').
        seed: sets the initialisation and the shuffling (local generator; the global RNG is left as it was).

    Returns:
        the trained model in eval mode, with its reference gradients in its buffers.
    """
    check_images(images, "images")
    x = to_gradcon_input(images)
    val = None if val_images is None else to_gradcon_input(check_images(val_images, "val_images"))
    check_positive_int(epochs, "epochs")
    alpha = check_number(grad_loss_weight, "grad_loss_weight", allow_zero=True)
    lr = check_number(lr, "lr")
    check_positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GradConCAE(x.shape[1]).to(x.device)
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    weights = model.decoder_weights()
    best, best_loss = None, float("inf")
    bar = range(epochs)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(bar, desc=description)
    for _ in bar:
        model.train()
        for index in torch.randperm(len(x), generator=gen).split(batch_size):
            batch = x[index.to(x.device)]
            optimizer.zero_grad(set_to_none=True)
            rec, align = gradcon_losses(model, batch, create_graph=alpha > 0)
            if int(model.reference_count) == 0 or alpha == 0:
                loss = rec  # no history on the first iteration: L_grad is not used
            else:
                loss = rec + alpha * align
            loss.backward()
            _update_reference(model, [w.grad for w in weights])
            optimizer.step()
        model.eval()
        if val is not None:
            current = _validation_loss(model, val, alpha, batch_size)
            if current < best_loss:
                best_loss, best = current, copy.deepcopy(model.state_dict())
    if best is not None:
        model.load_state_dict(best)
    optimizer.zero_grad(set_to_none=True)
    return model.eval()
