"""A Quadlet-compatible generator: podman 5.4's ``.container/.volume/.network/.pod`` → ``.service``.

``python -m units.quadlet [--user] [--dryrun] [--no-kmsg-log] [-v] OUTDIR`` (see ``generator.py``).
The converters are pure (``common.py``, ``volume.py``, ``network.py``, ``pod.py``, ``container.py``);
only ``generator.py`` reads and writes files.
"""
