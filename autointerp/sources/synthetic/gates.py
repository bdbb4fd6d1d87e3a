"""Causal-importance gates of the synthetic components, calibrated to SPD-like firing rates.

Each component's gate reads its own inner activation `x · v_c` (as SPD's gates do) and is a hard
sigmoid raised to the fourth power, `CI = clamp(a_c (x · v_c - t_c), 0, 1)^4`, computed for a
whole module as one `[tokens, d_in] × [d_in, C]` product with the scales folded into `V` and the
offsets into a bias, so its cost is SPD's. The fourth power is for the values' spread: in SPD runs
a fifth of the firing CI values are exactly 1.0 and the rest reach down to 3e-8; a plain clamp of
a linear gate puts too few values near zero.

The thresholds are calibrated at open time on the calibration stream: `t_c` is the value that
`k_c = rate_c · N` of the N calibration positions exceed, so component c fires on about
`rate_c` of the tokens (`rates.py`); `a_c` puts the top fifth of those at CI 1.0. A dead component
(rate 0) gets a zero direction and a negative bias: it never fires.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

ONE_FRACTION = 0.2
"""Share of a component's firings (at calibration) whose CI is exactly 1.0."""
MIN_SPREAD = 1e-6
"""Smallest excess over the threshold used for the scale (ties at the threshold)."""


class Gates:
    """Per module: `scale [C]` (a_c), `bias [C]` (−a_c t_c) and `scaled_v [d_in, C]` (V with each
    column times a_c)."""

    def __init__(
        self,
        layout: list[tuple[str, int]],
        v: Mapping[str, torch.Tensor],
        scale: dict[str, torch.Tensor],
        bias: dict[str, torch.Tensor],
    ) -> None:
        self.layout = list(layout)
        self.scale = scale
        self.bias = bias
        self.scaled_v = {path: v[path] * scale[path] for path, _ in self.layout}
        self.n_components = sum(c for _, c in self.layout)

    @classmethod
    def calibrate(
        cls,
        layout: list[tuple[str, int]],
        v: Mapping[str, torch.Tensor],
        inputs: Mapping[str, torch.Tensor],
        rates: torch.Tensor,
    ) -> Gates:
        """Place each gate on the module inputs `[N, d_in]` of the calibration positions."""
        scale: dict[str, torch.Tensor] = {}
        bias: dict[str, torch.Tensor] = {}
        start = 0
        for path, c in layout:
            rate = rates[start : start + c]
            start += c
            scale[path], bias[path] = _place(inputs[path] @ v[path], rate)
        return cls(layout, v, scale, bias)

    def ci(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """CI `float32 [N, C_total]` (modules concatenated in layout order) from module inputs."""
        first = inputs[self.layout[0][0]]
        out = torch.empty(first.shape[0], self.n_components, device=first.device)
        start = 0
        for path, c in self.layout:
            gate = torch.addmm(self.bias[path], inputs[path], self.scaled_v[path])
            out[:, start : start + c] = gate
            start += c
        return out.clamp_(0.0, 1.0).square_().square_()  # the fourth power, in place

    def digest(self) -> str:
        """sha256 of the calibrated scales and biases: the calibration depends on the device's
        arithmetic, so the same recipe can place a gate differently on another machine."""
        h = hashlib.sha256()
        for path, _ in self.layout:
            for t in (self.scale[path], self.bias[path]):
                h.update(bytes(t.float().cpu().contiguous().view(torch.uint8).tolist()))
        return h.hexdigest()


def _place(inner: torch.Tensor, rate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale `a [C]` and bias `-a·t [C]` that make each column of `inner [N, C]` exceed its
    threshold on about `rate` of the rows, the top `ONE_FRACTION` of those by at least 1/a."""
    n = inner.shape[0]
    ranked = inner.T.contiguous().sort(dim=1, descending=True).values  # [C, N]: rows sort faster
    rate = rate.to(inner.device)
    k = (rate * n).round().long().clamp_(1, n - 1)
    threshold = ranked.gather(1, k[:, None]).squeeze(1)  # k rows lie strictly above (ties aside)
    top = (torch.ceil(k * ONE_FRACTION).long() - 1).clamp_(min=0)
    spread = (ranked.gather(1, top[:, None]).squeeze(1) - threshold).clamp_(min=MIN_SPREAD)
    scale = 1.0 / spread
    alive = rate > 0
    scale = torch.where(alive, scale, torch.zeros_like(scale)).float()
    offset = torch.where(alive, -scale * threshold, torch.full_like(threshold, -1.0)).float()
    return scale, offset
