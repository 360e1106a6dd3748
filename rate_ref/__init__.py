"""Rate-based Equilibrium Propagation: the short, readable reference and the shared layers.

Public API::

    build_network(model_cfg) -> EPNetwork
    relax(net, x, *, steps, beta=0.0, y=None, state=None, mode="sync") -> state
    loss(net, state, y) -> mean loss;  predict(net, state) -> class scores
    ep_gradients(net, x, y, *, estimator, beta, T1, T2) -> dict[name, Tensor]
    bptt_gradients(net, x, y, *, T1, K) -> dict[name, Tensor]

Gradients are in autograd's sign convention: estimates of ∂(mean loss)/∂θ.
"""
from .bptt import bptt_gradients
from .config import ConfigError, from_dict, to_dict
from .dynamics import draw_masks, drives, relax, settle, sigma, step
from .estimators import ESTIMATORS, ep_gradients, free_phase, nudged_phase
from .layers import ConvPool, Dense
from .network import EPNetwork, LayerConfig, ModelConfig, State, build_network, loss, predict

__all__ = [
    "bptt_gradients", "ConfigError", "from_dict", "to_dict", "draw_masks", "drives", "relax", "settle", "sigma", "step",
    "ESTIMATORS", "ep_gradients", "free_phase", "nudged_phase", "ConvPool", "Dense", "EPNetwork", "LayerConfig",
    "ModelConfig", "State", "build_network", "loss", "predict",
]
