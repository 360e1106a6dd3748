"""spiking-ep: Equilibrium Propagation with spiking neurons on the shared rate_ref layers.

Modules: ``config`` (the YAML config tree), ``data`` (MNIST / Fashion-MNIST / CIFAR-10),
``train`` (training loop and run folders), ``cli`` (``spiking-ep`` command), and the spiking
translation: ``neurons``, ``dynamics`` (``relax_spiking``), ``learning`` (``spiking_ep_gradients``).
"""
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy so that importing the CLI or config does not pull in every module.
    if name == "spiking_ep_gradients":
        from .learning import spiking_ep_gradients
        return spiking_ep_gradients
    if name == "relax_spiking":
        from .dynamics import relax_spiking
        return relax_spiking
    raise AttributeError(f"module 'spiking_ep' has no attribute {name!r}")
