"""The layered EP network: layers + output (squared error inside, or softmax readout outside).

    Φ(x, s) = Σ_n Φ_n(s_{n-1}, s_n),  s_0 = x
    Φ^β(x, s, y) = Φ(x, s) − β ℓ(s, y)

Losses (per sample):
  squared_error:  s_N is the output, ℓ = ½‖s_N − onehot(y)‖²
  cross_entropy:  ŷ = softmax(W_out · flat(s_N) + b_out) reads s_N from outside, ℓ = CE(ŷ, y)

A state is a tuple of tensors ``(s_1, …, s_N)``, each ``(batch, *layer.out_shape)``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ConfigError, from_dict
from .layers import ConvPool, Dense

State = tuple[Tensor, ...]


@dataclass(frozen=True)
class LayerConfig:
    """One layer. ``type: dense`` uses ``features``; ``type: conv`` uses channels/kernel/padding/pool."""
    type: Literal["dense", "conv"]
    features: int | None = None
    channels: int | None = None
    kernel: int = 3
    padding: int = 1
    pool: Literal["max", "avg", "none"] = "max"
    dropout: float = 0.0

    def validate(self, where: str = "") -> None:
        if self.type == "dense" and (self.features is None or self.features < 1):
            raise ConfigError(f"{where}.features: a dense layer needs a positive 'features' count")
        if self.type == "conv" and (self.channels is None or self.channels < 1):
            raise ConfigError(f"{where}.channels: a conv layer needs a positive 'channels' count")
        if self.kernel < 1 or self.padding < 0:
            raise ConfigError(f"{where}: kernel must be ≥ 1 and padding ≥ 0, got kernel {self.kernel}, padding {self.padding}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}.dropout: a drop probability in [0, 1) is needed, got {self.dropout}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. ``theta`` sets σ(u) = clamp(u/θ, 0, 1); ``kind`` picks rate or spiking neurons."""
    layers: tuple[LayerConfig, ...]
    input_shape: tuple[int, ...] = (1, 28, 28)
    n_classes: int = 10
    loss: Literal["cross_entropy", "squared_error"] = "cross_entropy"
    theta: float = 1.0
    kind: Literal["rate", "spiking"] = "rate"
    unidirectional: bool = False
    init_scale: float = 1.0

    def validate(self, where: str = "model") -> None:
        if not self.layers:
            raise ConfigError(f"{where}.layers: at least one layer is needed")
        if self.theta <= 0:
            raise ConfigError(f"{where}.theta: must be > 0, got {self.theta}")
        if self.loss == "squared_error":
            last = self.layers[-1]
            if last.type != "dense" or last.features != self.n_classes:
                raise ConfigError(
                    f"{where}.layers: with loss squared_error the last layer is the output and must be "
                    f"dense with features = n_classes ({self.n_classes})")


class EPNetwork(nn.Module):
    """Layers (``self.layers[n-1]`` connects s_{n-1} → s_n) plus the output definition."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.theta = float(cfg.theta)
        self.loss_kind = cfg.loss
        self.n_classes = cfg.n_classes
        self.input_shape = tuple(cfg.input_shape)
        layers, shape = [], self.input_shape
        for i, lc in enumerate(cfg.layers):
            try:
                if lc.type == "dense":
                    layer = Dense(shape, lc.features, unidirectional=cfg.unidirectional and i > 0,
                                  init_scale=cfg.init_scale)
                else:
                    layer = ConvPool(shape, lc.channels, kernel=lc.kernel, padding=lc.padding, pool=lc.pool,
                                     unidirectional=cfg.unidirectional and i > 0, init_scale=cfg.init_scale)
            except ValueError as e:
                raise ConfigError(f"model.layers[{i}]: {e}") from None
            layers.append(layer)
            shape = layer.out_shape
        self.layers = nn.ModuleList(layers)
        self.readout = None
        if cfg.loss == "cross_entropy":
            self.readout = nn.Linear(math.prod(shape), cfg.n_classes)

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        return [layer.out_shape for layer in self.layers]

    def zero_state(self, x: Tensor) -> State:
        """All-zero state for a batch ``x``; device, dtype and memory format (channels_last) follow ``x``."""
        fmt = memory_format(x)
        return tuple(in_format(x.new_zeros((x.shape[0], *s)), fmt) for s in self.state_shapes)

    def check_input(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"input batch has shape {tuple(x.shape)}, the network expects (N, {', '.join(map(str, self.input_shape))})")

    # --- outputs -----------------------------------------------------------------------------
    def logits(self, state: State) -> Tensor:
        """Class scores ``(N, n_classes)``: readout logits (cross-entropy) or s_N (squared error)."""
        s_out = state[-1]
        if self.readout is None:
            return s_out
        return self.readout(s_out.flatten(1))

    def loss_per_sample(self, state: State, y: Tensor) -> Tensor:
        """ℓ(s, y) per sample, shape ``(N,)``."""
        if self.readout is None:
            target = F.one_hot(y, self.n_classes).to(state[-1].dtype)
            return 0.5 * ((state[-1] - target) ** 2).sum(1)
        return F.cross_entropy(self.logits(state), y, reduction="none")

    def nudge(self, state: State, y: Tensor, beta: float) -> Tensor:
        """−β ∂ℓ/∂s_N, shape of s_N: β(onehot − s_N), or β W_outᵀ(onehot − softmax) for the readout."""
        target = F.one_hot(y, self.n_classes).to(state[-1].dtype)
        if self.readout is None:
            return beta * (target - state[-1])
        err = target - torch.softmax(self.logits(state), dim=1)
        return (beta * err @ self.readout.weight).view_as(state[-1])

    # --- primitive function ------------------------------------------------------------------
    def phi(self, x: Tensor, state: State, beta: float = 0.0, y: Tensor | None = None) -> Tensor:
        """Φ^β(x, s, y) per sample, shape ``(N,)`` (differentiable in s and θ; the test oracle)."""
        prev, total = x, 0.0
        for layer, s in zip(self.layers, state):
            total = total + layer.phi(prev, s)
            prev = s
        if beta != 0.0:
            total = total - beta * self.loss_per_sample(state, y)
        return total


def memory_format(x: Tensor) -> torch.memory_format:
    """``torch.channels_last`` if the image batch ``x`` is stored channels-last, else contiguous.

    Convolutions on channels-last (NHWC) tensors run about twice as fast on x86 CPUs (oneDNN) and
    on GPUs; states created for a channels-last input are channels-last too, and elementwise
    neuron updates keep the format, so no layout conversion happens inside the step loop.
    """
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def in_format(t: Tensor, fmt: torch.memory_format) -> Tensor:
    """``t`` in memory format ``fmt`` if it is a 4-D (N, C, H, W) tensor; other tensors unchanged."""
    return t.contiguous(memory_format=fmt) if t.dim() == 4 else t


def build_network(model_cfg: ModelConfig | dict) -> EPNetwork:
    """Build the network from a :class:`ModelConfig` (or the equivalent dict, e.g. from YAML)."""
    if isinstance(model_cfg, dict):
        model_cfg = from_dict(ModelConfig, model_cfg, "model")
    elif dataclasses.is_dataclass(model_cfg):
        model_cfg.validate("model")
    return EPNetwork(model_cfg)


def loss(net: EPNetwork, state: State, y: Tensor) -> Tensor:
    """Mean loss over the batch at ``state``."""
    return net.loss_per_sample(state, y).mean()


def predict(net: EPNetwork, state: State) -> Tensor:
    """Class scores ``(N, n_classes)`` at ``state``; argmax is the predicted class."""
    return net.logits(state)
