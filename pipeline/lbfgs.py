"""L-BFGS without a line search whose step never reads a value back from the device.

`torch.optim.LBFGS` checks its tolerances and the curvature condition with Python `if`s on tensors,
four host-device synchronisations per iteration, which on a GPU stall the queue of kernels the
next iteration could already be running. Here every decision is a tensor operation: a curvature
pair that fails the condition is stored with weight zero instead of being skipped, so it drops out
of the two-loop recursion (Nocedal & Wright, algorithm 7.4) by arithmetic, not by a branch.

It takes the same steps as `torch.optim.LBFGS(max_iter=1, line_search_fn=None)` called once per
iteration (tests/test_lbfgs.py compares the two), except that a rejected pair still takes a slot
in the history, that it never stops on its own tolerances (the caller decides when to stop), and
that until a first curvature pair is kept every step is as short as torch's first: torch's
second step, after a rejected first pair, is the raw gradient times `lr`, which on a style loss
(gradients of 1e5 per pixel) threw the pixels to 1e5 and the loss to 1e25 (measured). Given the
`step_length` an earlier, similar problem ended with (`step_length()`), the first step is a full
one of that length instead: a run of 3 iterations otherwise spends its first on the short probe.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

CURVATURE_EPSILON = 1e-10  # torch.optim.LBFGS's threshold on y.s for keeping a pair


class LBFGS:
    """Minimise a closure's loss over one tensor, one iteration per `step`."""

    def __init__(self, parameter: Tensor, *, lr: float = 1.0, history_size: int = 50,
                 step_length: Tensor | None = None) -> None:
        """`step_length`: a 0-d tensor from `step_length()` of an earlier run (0: it kept no pair),
        the scale of this run's steps until it keeps a pair of its own; None: short first steps."""
        if not parameter.requires_grad:
            raise ValueError("LBFGS needs a tensor that requires grad")
        n = parameter.numel()
        self.parameter, self.lr, self.history_size = parameter, lr, history_size
        self.steps = parameter.new_zeros(history_size, n)  # s_k = x_{k+1} - x_k, (m, n)
        self.changes = parameter.new_zeros(history_size, n)  # y_k = g_{k+1} - g_k, (m, n)
        self.rho = parameter.new_zeros(history_size)  # 1 / (y_k . s_k), 0 for a rejected pair, (m,)
        self.scale = parameter.new_ones(())  # gamma = s.y / y.y of the newest kept pair
        self.curved = torch.zeros((), dtype=torch.bool, device=parameter.device)  # whether any pair was kept
        if step_length is not None:  # chosen by arithmetic, as everything here: no read back
            length = step_length.to(parameter)  # its dtype and device
            self.scale = torch.where(length > 0, length, self.scale)
            self.curved = length > 0
        self.n_iters = 0
        self._last_grad: Tensor | None = None
        self._last_step: Tensor | None = None

    def zero_grad(self) -> None:
        self.parameter.grad = None

    def step(self, closure: Callable[[], Tensor]) -> Tensor:
        """Evaluate the closure at the current point, then move along the L-BFGS direction.

        Returns the loss at the point where the closure was evaluated (before the move), as
        `torch.optim.LBFGS` does; reading it is the caller's only synchronisation.
        """
        loss = closure()
        grad = self.parameter.grad.detach().reshape(-1).clone()  # (n,)
        if self._last_grad is not None:
            self._remember(grad - self._last_grad, self._last_step)
        direction = self._direction(grad)
        # No curvature yet: a gradient step of length at most lr (as torch's first), chosen by arithmetic.
        short = torch.clamp(1.0 / grad.abs().sum(), max=1.0)
        step = direction * (self.lr * torch.where(self.curved, torch.ones_like(short), short))
        with torch.no_grad():
            self.parameter.add_(step.view_as(self.parameter))
        self._last_grad, self._last_step = grad, step
        self.n_iters += 1
        return loss

    def step_length(self) -> Tensor:
        """The scale of the newest kept pair (gamma), 0 if none was kept: a 0-d tensor on the device
        that a later run on a similar problem can start with (`step_length=`)."""
        return torch.where(self.curved, self.scale, torch.zeros_like(self.scale))

    def _remember(self, change: Tensor, step: Tensor) -> None:
        slot = (self.n_iters - 1) % self.history_size
        curvature = change @ step  # y.s
        kept = curvature > CURVATURE_EPSILON
        self.steps[slot] = step
        self.changes[slot] = change
        self.rho[slot] = torch.where(kept, 1.0 / curvature, torch.zeros_like(curvature))
        self.scale = torch.where(kept, curvature / (change @ change), self.scale)
        self.curved = self.curved | kept

    def _direction(self, grad: Tensor) -> Tensor:
        """-H grad by the two-loop recursion over the stored pairs, newest first."""
        filled = min(self.n_iters, self.history_size)  # pairs stored so far
        newest = (self.n_iters - 1) % self.history_size
        order = [(newest - i) % self.history_size for i in range(filled)]
        q = -grad
        alphas = {}
        for slot in order:
            alphas[slot] = self.rho[slot] * (self.steps[slot] @ q)
            q = q - alphas[slot] * self.changes[slot]
        r = q * self.scale
        for slot in reversed(order):
            beta = self.rho[slot] * (self.changes[slot] @ r)
            r = r + self.steps[slot] * (alphas[slot] - beta)
        return r
