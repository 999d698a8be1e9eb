"""Eq. 26 optimiser (Algorithm 2 lines 10-11, 14-15, 18-19) and the paper's LR schedule.

Eq. 26:  eta_i = eta_i0 / sqrt(v_t + eps) * min(1, ||g_{t-1}|| / ||g_t||)

`CausalAdam` keeps Adam's first moment M (Alg. 2 line 10) and second moment
v_t = E[g^2] (line 11), with Adam's bias correction of both (the paper leaves
it out; without it the first steps are ~1/(1-beta) too small). The ratio term
scales a param group's step down whenever that group's gradient norm grows, so a
sudden gradient spike cannot produce a proportionally larger step. eps is added
to sqrt(v) as in Adam (not inside the root as Eq. 26 writes it); the two differ
only when v ~ eps^2, and this keeps `ratio_clamp=False` identical to torch's Adam.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch


class CausalAdam(torch.optim.Optimizer):
    """Adam with the Eq. 26 gradient-ratio clamp, one clamp per param group.

    Args:
        params: parameters or param-group dicts.
        lr: eta_0 (paper: 2e-4).
        betas: (beta1, beta2) for M and v (paper: 0.9, 0.999).
        eps: added to sqrt(v_hat).
        ratio_clamp: apply min(1, ||g_{t-1}|| / ||g_t||); False gives plain Adam.

    The previous gradient norm of each group lives in the optimiser state (keyed
    by the group's first parameter), so `state_dict()` checkpoints it.
    """

    def __init__(self, params: Iterable, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, ratio_clamp: bool = True):
        if lr < 0 or eps < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"CausalAdam: invalid lr={lr}, betas={betas} or eps={eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, ratio_clamp=ratio_clamp))

    def _ratio(self, group: dict, grads: list[torch.Tensor]) -> torch.Tensor | float:
        """min(1, ||g_{t-1}|| / ||g_t||) over the group; 1 on the first step or a zero gradient."""
        if not group["ratio_clamp"]:
            return 1.0
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        gstate = self.state[group["params"][0]]
        prev = gstate.get("prev_grad_norm")
        gstate["prev_grad_norm"] = norm.detach().clone()
        if prev is None:
            return 1.0
        return torch.where(norm > prev, prev / norm, torch.ones_like(norm))

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            ratio = self._ratio(group, [p.grad for p in params])
            beta1, beta2 = group["betas"]
            for p in params:
                grad = p.grad
                state = self.state[p]
                if "step" not in state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = int(state["step"].item())
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, 1 - beta1)                                 # M <- b1 M + (1-b1) g
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # v <- b2 v + (1-b2) g^2
                bias1 = 1 - beta1 ** t
                bias2_sqrt = math.sqrt(1 - beta2 ** t)
                denom = (exp_avg_sq.sqrt() / bias2_sqrt).add_(group["eps"])
                step_size = group["lr"] / bias1
                if isinstance(ratio, torch.Tensor):
                    p.addcdiv_(exp_avg * ratio, denom, value=-step_size)
                else:
                    p.addcdiv_(exp_avg, denom, value=-step_size)
        return loss


def step_lr_lambda(halve_every: int) -> Callable[[int], float]:
    """LambdaLR factor: halve the LR every `halve_every` steps (paper: every 200k); <= 0 keeps it constant."""
    if halve_every <= 0:
        return lambda step: 1.0
    return lambda step: 0.5 ** (step // halve_every)


def make_scheduler(optimizer: torch.optim.Optimizer, halve_every: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The paper's step schedule on `optimizer` (Alg. 2 line 21), stepped once per iteration."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, step_lr_lambda(halve_every))
