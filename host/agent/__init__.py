"""fusion-agent: the host agent that turns this host's placements (in etcd) into systemd units.

- :mod:`host.agent.reconcile` (pure): desired units + observed units -> ordered actions.
- :mod:`host.agent.systemd`: the one systemd driver (systemctl, journalctl, unit files on disk).
- :mod:`host.agent.main`: the loop (register under a lease, watch placements, reconcile, report).
"""
