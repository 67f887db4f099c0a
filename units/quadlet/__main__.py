"""``python -m units.quadlet``: run the generator (side effects: see ``generator.py``)."""

from __future__ import annotations

import sys

from units.quadlet.generator import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
