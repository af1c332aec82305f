"""Multi-split reversible layers, and backpropagation by reconstruction.

A layer splits its input along the features into ``n`` parts and updates them in turn,

    Y_k = X_k + G_k(pool(X_{i>k}, Y_{i<k}))          k = 1 .. n,

where ``pool`` is the mean of the parts it is given. Each ``G_k`` sees only parts that are already
known when going backwards, so the input is recovered exactly from the output,

    X_k = Y_k - G_k(pool(X_{i>k}, Y_{i<k}))          k = n .. 1

(RevNet, Gomez et al. 2017, generalised to n splits as in DARTSformer, Zhao et al. 2021).

:class:`ReversibleStack` runs its layers through :class:`_BackpropByReconstruction`: the forward keeps
no activations but the stack's output; the backward rebuilds each layer's input from its output,
re-runs that one layer with autograd, and moves on. Activation memory is then one layer's worth,
whatever the depth. Operations must be deterministic (no dropout) for the rebuilt graph to be the
one that ran.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn


def _pool(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    if len(parts) == 1:
        return parts[0]
    return torch.stack(list(parts)).mean(dim=0)


class ReversibleLayer(nn.Module):
    """One multi-split reversible layer; ``functions[k]`` is ``G_k`` (a module mapping ``(B, T, c)``)."""

    def __init__(self, functions: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(functions) < 2:
            raise ValueError("a reversible layer needs at least 2 splits")
        self.functions = nn.ModuleList(functions)

    @property
    def n_split(self) -> int:
        return len(self.functions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = x.chunk(self.n_split, dim=-1)
        ys: list[torch.Tensor] = []
        for k, g in enumerate(self.functions):
            ys.append(xs[k] + g(_pool([*xs[k + 1:], *ys])))
        return torch.cat(ys, dim=-1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        ys = y.chunk(self.n_split, dim=-1)
        xs: list[torch.Tensor | None] = [None] * self.n_split
        for k in reversed(range(self.n_split)):
            # the same parts, in the same order, as the forward pooled: the same G_k value comes back
            later = [t for t in xs[k + 1:] if t is not None]
            xs[k] = ys[k] - self.functions[k](_pool([*later, *ys[:k]]))
        return torch.cat(xs, dim=-1)  # type: ignore[arg-type]


class _BackpropByReconstruction(torch.autograd.Function):
    """Forward through ``layers`` keeping only the output; rebuild inputs layer by layer in backward.

    The parameters are passed as inputs (after ``layers`` and ``in_place``) so that autograd calls
    this function's backward for them; they are the same tensors the layers hold. With ``in_place``
    each layer's parameter gradients are added to ``.grad`` as soon as that layer is done, and
    autograd gets None for them: holding every layer's gradients until the end would cost a second
    copy of the parameters, growing with depth. ``in_place=False`` returns them through autograd
    (what ``torch.autograd.grad`` and ``gradcheck`` need).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layers: nn.ModuleList, in_place: bool, *params: torch.Tensor) -> torch.Tensor:
        ctx.layers = layers
        ctx.in_place = in_place
        ctx.param_ids = [id(p) for p in params]
        with torch.no_grad():
            for layer in layers:
                x = layer(x)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[Any, ...]:
        (y,) = ctx.saved_tensors
        grads: dict[int, torch.Tensor] = {}
        wanted = set(ctx.param_ids)
        for layer in reversed(ctx.layers):
            with torch.no_grad():
                x = layer.inverse(y)
            params = [p for p in layer.parameters() if id(p) in wanted]
            with torch.enable_grad():
                x_in = x.detach().requires_grad_(True)
                out = layer(x_in)
                found = torch.autograd.grad(out, [x_in, *params], grad_y, allow_unused=True)
            grad_y = found[0]
            for p, g in zip(params, found[1:]):
                if g is None:
                    continue
                if ctx.in_place:
                    if p.grad is None:
                        p.grad = g
                    else:
                        p.grad.add_(g)
                else:
                    grads[id(p)] = grads[id(p)] + g if id(p) in grads else g
            y = x
            del out, x_in, found
        return (grad_y, None, None, *(grads.get(i) for i in ctx.param_ids))


class ReversibleStack(nn.Module):
    """Reversible layers in sequence; ``reconstruct=False`` trains them with ordinary backprop.

    With ``reconstruct`` the parameter gradients go straight to ``.grad`` (``loss.backward()``);
    set ``grads_in_place = False`` to get them from ``torch.autograd.grad`` instead.
    """

    def __init__(self, layers: Sequence[ReversibleLayer], reconstruct: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.reconstruct = reconstruct
        self.grads_in_place = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reconstruct and torch.is_grad_enabled():
            params = [p for p in self.parameters() if p.requires_grad]
            if x.requires_grad or params:
                return _BackpropByReconstruction.apply(x, self.layers, self.grads_in_place, *params)
        for layer in self.layers:
            x = layer(x)
        return x

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y
