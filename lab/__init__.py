"""A real local cluster of atomic hosts booted with systemd-nspawn from their own OSTree deployments."""
