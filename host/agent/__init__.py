"""fusion-agent: the host agent that turns this host's placements (in etcd) into systemd units.

- :mod:`host.agent.reconcile` (pure): desired units + observed units -> ordered actions.
- :mod:`host.agent.systemd`: the one systemd driver (systemctl, journalctl, unit files on disk).
- :mod:`host.agent.main`: the loop (register under a lease, watch placements, reconcile, report).
- :mod:`host.agent.tree`: the host's TreeRequest (fetch, stage, reboot) and its health checks.
- :mod:`host.agent.autoupdate`: the auto-update mode (``FUSION_AUTO_UPDATE=fleetlock``): a pure
  ``next_step`` and its shell; :mod:`host.agent.fleetlock` is its FleetLock client.
"""
