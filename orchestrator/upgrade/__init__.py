"""Rolling host upgrades (issue 6).

- ``window``: maintenance windows (pure).
- ``machine``: the per-host and rollout state machine, ``step(state, observations, now)`` (pure).
- ``status``: the status display and its JSON (pure).
- ``slots``: reboot slots in etcd (through ``common.store``).
- ``rollouts``: rollout state in etcd, observations from etcd, the etcd-only actions.
- ``fleetlock``: a FleetLock-protocol HTTP server backed by the slots.
"""
