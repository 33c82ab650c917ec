"""Model-state snapshots for hygiene tests: mode, hooks (also global), requires_grad, .grad, state."""
import torch
from torch import nn


def snapshot(model):
    return {
        "training": [(n, m.training) for n, m in model.named_modules()],
        "hooks": [(n, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
                   len(getattr(m, "_backward_pre_hooks", {}))) for n, m in model.named_modules()],
        "requires_grad": [(n, p.requires_grad) for n, p in model.named_parameters()],
        "grad": [(n, None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "global": (len(nn.modules.module._global_forward_hooks), len(nn.modules.module._global_forward_pre_hooks),
                   len(nn.modules.module._global_backward_hooks)),
    }


def assert_same(before, after):
    for key in ("training", "hooks", "requires_grad", "global"):
        assert before[key] == after[key], key
    for (n, g0), (_, g1) in zip(before["grad"], after["grad"]):
        assert (g0 is None and g1 is None) or torch.equal(g0, g1), n
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), k


class Bomb(nn.Module):
    """``inner`` (identity by default) that raises in the forward or the backward pass when armed
    (``armed = "forward"`` or ``"backward"``; ``True`` means forward)."""

    def __init__(self, inner=None):
        super().__init__()
        self.armed = None
        self.inner = inner if inner is not None else nn.Identity()

    def forward(self, x):
        if self.armed in ("forward", True):
            raise RuntimeError("boom (forward)")
        if self.armed == "backward" and x.requires_grad:
            x = x.clone()
            x.register_hook(lambda g: (_ for _ in ()).throw(RuntimeError("boom (backward)")))
        return self.inner(x)


def arm_for_hygiene(model, bomb=None):
    """Put a Bomb at ``classifier.dropout2``, a stale ``.grad`` and a frozen parameter into a SmallCNN."""
    model.classifier.dropout2 = bomb if bomb is not None else Bomb()
    model.features.block3.conv1.weight.grad = torch.full_like(model.features.block3.conv1.weight, 0.5)
    model.features.block1.conv1.weight.requires_grad_(False)
    return model
