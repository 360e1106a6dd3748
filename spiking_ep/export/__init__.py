"""Export trained EP networks to neuromorphic toolchains: NIR graphs (``nir``) and plain HDF5.

    export_run(run_dir, out=..., feedback="full"|"none", fmt="nir"|"h5")   run folder → checked file + report
    import_network(path) -> Imported(net, config, metadata, exact)          file → EP network
    NIR_PROFILE, nir_exact(cfg)                                             the simulator's NIR-exact profile

Modules: ``layout`` (neuron layouts, connections as NIR convolutions), ``nir_graph`` (build, read,
rebuild), ``nir_run`` (nirtorch node map and execution), ``h5`` (plain HDF5), ``verify`` (spike-for-
spike and test-error checks), ``importers`` (snnTorch, norse), ``profile``, ``pipeline``.
docs/export.md describes the graph, the step convention and the measurements.

Importing this package is cheap (nir, nirtorch and h5py load on first use), so the CLI can catch
:class:`ExportError` without paying for them.
"""
from __future__ import annotations

from .errors import ExportError
from .profile import NIR_PROFILE, deviations, nir_exact, overrides as nir_profile_overrides

__all__ = ["ExportError", "NIR_PROFILE", "deviations", "export_run", "import_network", "nir_exact",
           "nir_profile_overrides", "save_imported"]


def export_run(*args, **kwargs) -> dict:
    """See :func:`spiking_ep.export.pipeline.export_run`."""
    from .pipeline import export_run as run
    return run(*args, **kwargs)


def import_network(*args, **kwargs):
    """See :func:`spiking_ep.export.pipeline.import_network`."""
    from .pipeline import import_network as run
    return run(*args, **kwargs)


def save_imported(*args, **kwargs):
    """See :func:`spiking_ep.export.pipeline.save_imported`."""
    from .pipeline import save_imported as run
    return run(*args, **kwargs)
