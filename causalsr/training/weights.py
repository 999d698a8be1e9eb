"""Eq. 24: dynamic loss weights.

    lambda_i(t) = lambda_i0 * (1 + gamma * cos(pi t / T)) / (1 + exp(-alpha * L_i(t)))

L_i(t) is the running mean of term i since the last update; weights are
refreshed every `t_update` steps (Algorithm 2 lines 22-23) and held in between.
"""
from __future__ import annotations

import math


def dynamic_weight(base: float, t: int, total: int, loss_value: float, gamma: float, alpha: float) -> float:
    """The Eq. 24 weight of one term at iteration t of T."""
    return base * (1.0 + gamma * math.cos(math.pi * t / max(total, 1))) / (1.0 + math.exp(-alpha * loss_value))


class DynamicWeights:
    """Holds lambda_i(t) for named terms; `observe` accumulates L_i, `maybe_update` applies Eq. 24."""

    def __init__(self, base: dict[str, float], gamma: float, alpha: float, t_update: int):
        self.base = dict(base)
        self.gamma, self.alpha, self.t_update = gamma, alpha, max(int(t_update), 1)
        # Before the first update each weight is Eq. 24 at t=0 with L_i=0: base*(1+gamma)/2.
        self.current = {k: dynamic_weight(v, 0, 1, 0.0, gamma, alpha) for k, v in self.base.items()}
        self._sum = {k: 0.0 for k in self.base}
        self._count = {k: 0 for k in self.base}

    def observe(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            if k in self._sum and math.isfinite(v):
                self._sum[k] += v
                self._count[k] += 1

    def maybe_update(self, t: int, total: int) -> bool:
        """Apply Eq. 24 when t is a multiple of t_update; returns whether weights changed."""
        if t == 0 or t % self.t_update:
            return False
        for k in self.base:
            if self._count[k]:
                mean = self._sum[k] / self._count[k]
                self.current[k] = dynamic_weight(self.base[k], t, total, mean, self.gamma, self.alpha)
            self._sum[k], self._count[k] = 0.0, 0
        return True

    def __getitem__(self, key: str) -> float:
        return self.current[key]

    def state_dict(self) -> dict:
        return {"current": dict(self.current), "sum": dict(self._sum), "count": dict(self._count)}

    def load_state_dict(self, state: dict) -> None:
        self.current.update(state["current"])
        self._sum.update(state["sum"])
        self._count.update(state["count"])
