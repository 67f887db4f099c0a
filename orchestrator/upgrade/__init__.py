"""Rolling host upgrades (issue 6).

- ``window``: maintenance windows (pure).
- ``machine``: the per-host and rollout state machine, ``step(state, observations, now)`` (pure).
- ``status``: the status display and its JSON (pure).
- ``slots``: reboot slots in etcd (through ``common.store``).
- ``rollouts``: rollout state in etcd, observations from etcd, the etcd-only actions.
- ``rollouts``: also clears a finished rollout's carried-out TreeRequests (hosts free again).
- ``fleetlock``: a FleetLock-protocol HTTP server backed by the slots (``fusion fleetlock serve``);
  the agent's auto-update mode (``host.agent.autoupdate``) is its client.
"""
