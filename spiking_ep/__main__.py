"""``python -m spiking_ep ...``: the ``spiking-ep`` command (see :mod:`spiking_ep.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
