"""Pure functions from specs to systemd units (no I/O). Imports only `specs`."""
