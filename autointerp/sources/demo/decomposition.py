"""A simplified SPD decomposition of DemoStoryLM's linear layers.

Every decomposed weight is a sum of rank-one components, `W^T = Σ_c v_c u_cᵀ` (`V [d_in, C]`,
`U [C, d_out]`). Each component has a tiny gate MLP that reads only its own inner activation
`v_cᵀ x` and predicts its causal importance; CI = clamp(gate, 0, 1) in the forward pass, so it is
exactly 0 for most components, as in SPD's `lower_leaky_hard` sigmoid. During training the
clamp's gradient leaks a little outside [0, 1] so dead gates can come back (and gates above 1 are
pushed down by the importance penalty).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from autointerp.sources.demo.model import DemoStoryLM

LEAK = 0.01


class _LeakyClamp(torch.autograd.Function):
    """clamp(x, 0, 1) forward; backward slope 1 inside, `below` under 0 and `above` over 1."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, below: float, above: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slopes = (below, above)
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        below, above = ctx.slopes
        slope = torch.where(x < 0, below, torch.where(x > 1, above, 1.0))
        return grad * slope, None, None


def lower_leaky_clamp(x: torch.Tensor) -> torch.Tensor:
    """CI used for masks: gradient leaks below 0 so a closed gate can reopen."""
    return _LeakyClamp.apply(x, LEAK, 0.0)


def upper_leaky_clamp(x: torch.Tensor) -> torch.Tensor:
    """CI used for the importance penalty: gradient leaks above 1 so the penalty still acts."""
    return _LeakyClamp.apply(x, 0.0, LEAK)


class LinearComponents(nn.Module):
    """C rank-one components of one `nn.Linear` weight, with one scalar gate MLP each."""

    def __init__(self, d_in: int, d_out: int, c: int, gate_hidden: int) -> None:
        super().__init__()
        self.V = nn.Parameter(torch.empty(d_in, c))
        self.U = nn.Parameter(torch.empty(c, d_out))
        self.gate_w1 = nn.Parameter(torch.empty(c, gate_hidden))
        self.gate_b1 = nn.Parameter(torch.empty(c, gate_hidden))
        self.gate_w2 = nn.Parameter(torch.empty(c, gate_hidden))
        self.gate_b2 = nn.Parameter(torch.empty(c))

    @torch.no_grad()
    def initialise(self, weight: torch.Tensor, generator: torch.Generator) -> None:
        """Random V, then the U that reproduces `weight` exactly (min-norm least squares)."""
        d_in, c = self.V.shape
        self.V.copy_(torch.randn(d_in, c, generator=generator) / d_in**0.5)
        self.U.copy_(torch.linalg.pinv(self.V) @ weight.T)
        h = self.gate_w1.shape[1]
        self.gate_w1.copy_(torch.randn(c, h, generator=generator))
        self.gate_b1.copy_(torch.randn(c, h, generator=generator))
        self.gate_w2.copy_(torch.randn(c, h, generator=generator) / h**0.5)
        self.gate_b2.zero_()

    @property
    def c(self) -> int:
        return self.V.shape[1]

    def weight(self) -> torch.Tensor:
        """The sum of all components, shaped like `nn.Linear.weight` `[d_out, d_in]`."""
        return (self.V @ self.U).T

    def gate(self, inner: torch.Tensor) -> torch.Tensor:
        """Pre-clamp causal importance `[..., C]` from inner activations `[..., C]`."""
        hidden = F.gelu(inner.unsqueeze(-1) * self.gate_w1 + self.gate_b1)
        return (hidden * self.gate_w2).sum(-1) + self.gate_b2

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return ((x @ self.V) * mask) @ self.U


def _key(path: str) -> str:
    return path.replace(".", "-")


class DecomposedLM(nn.Module):
    """A frozen DemoStoryLM plus the components and gates of the modules in `module_c`."""

    def __init__(self, target: DemoStoryLM, module_c: Mapping[str, int], gate_hidden: int) -> None:
        super().__init__()
        self.target = target.requires_grad_(False)
        self.module_c = dict(module_c)
        self.gate_hidden = gate_hidden
        linears = dict(target.named_modules())
        self.components = nn.ModuleDict(
            {
                _key(path): LinearComponents(
                    linears[path].in_features, linears[path].out_features, c, gate_hidden
                )
                for path, c in self.module_c.items()
            }
        )

    @property
    def paths(self) -> list[str]:
        return list(self.module_c)

    def component(self, path: str) -> LinearComponents:
        return self.components[_key(path)]  # type: ignore[return-value]

    def initialise(self, generator: torch.Generator) -> None:
        linears = dict(self.target.named_modules())
        for path in self.paths:
            self.component(path).initialise(linears[path].weight, generator)

    @contextlib.contextmanager
    def _hooks(self, hook_for: Mapping[str, object]) -> Iterator[None]:
        linears = dict(self.target.named_modules())
        handles = [linears[p].register_forward_hook(h) for p, h in hook_for.items()]  # type: ignore[arg-type]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def forward_with_inputs(
        self, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The target model's logits and the input of every decomposed module."""
        inputs: dict[str, torch.Tensor] = {}

        def capture(path: str) -> Callable[..., None]:
            def hook(_m: nn.Module, args: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
                inputs[path] = args[0]

            return hook

        with self._hooks({p: capture(p) for p in self.paths}):
            logits = self.target(tokens)
        return logits, inputs

    def gates(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Pre-clamp CI per module from the target model's (detached) module inputs."""
        return {
            p: self.component(p).gate(inputs[p].detach() @ self.component(p).V) for p in self.paths
        }

    def forward_masked(
        self, tokens: torch.Tensor, masks: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Logits with each decomposed module replaced by its components scaled by `masks`."""

        def replace(path: str) -> Callable[..., torch.Tensor]:
            def hook(
                _m: nn.Module, args: tuple[torch.Tensor, ...], _out: torch.Tensor
            ) -> torch.Tensor:
                return self.component(path)(args[0], masks[path])

            return hook

        with self._hooks({p: replace(p) for p in self.paths}):
            return self.target(tokens)

    def faithfulness_loss(self) -> torch.Tensor:
        """Mean squared difference between each target weight and its sum of components."""
        linears = dict(self.target.named_modules())
        total = sum(
            ((self.component(p).weight() - linears[p].weight) ** 2).sum() for p in self.paths
        )
        n = sum(linears[p].weight.numel() for p in self.paths)
        return total / n  # type: ignore[return-value]
