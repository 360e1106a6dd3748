"""The export's user-facing error (its own module so the CLI can catch it without importing nir)."""
from __future__ import annotations


class ExportError(ValueError):
    """A run folder or file cannot be exported or imported; the message names the file, layer or node."""
