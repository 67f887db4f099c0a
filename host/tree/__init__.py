"""Atomic host trees: compose Debian-based OSTree trees and manage a host's deployments.

Modules (one job each):
- ``compose``     treefile -> OSTree commit: ``compose(treefile, repo, cache_dir=..., progress=...)``
- ``rootfs``      debootstrap/apt (cached), busybox test trees, .deb unpacking, files/units/postprocess
- ``layout``      a built rootfs -> the OSTree layout (/usr/etc, empty /var + tmpfiles.d, dpkg db in /usr)
- ``selfinstall`` Fusion itself into the tree (/usr/lib/fusion/python, /usr/bin/fusion)
- ``ops``         a sysroot: init, status, upgrade, deploy, rollback, rebase, config-diff, cleanup, pin
- ``layering``    ``fusion host install PKG.deb``: local commits re-applied on every upgrade
- ``status``/``packages``  pure parsers, models and diffs (unit-tested on recorded output)
- ``ostree``      the ostree command line as typed calls; ``TreeError`` with hints
- ``commitobj``   commit objects decoded from the repository's files (no ``ostree show`` process)
- ``bootconfig``  an offline sysroot's boot order from its boot loader entries (no ``ostree admin status``)

For the lab (booting a host from its sysroot with systemd-nspawn)::

    from host.tree.compose import compose
    from host.tree import ops
    result = compose(Path("examples/trees/fusion-host.yaml"), repo)      # cached in /var/cache/fusion
    ops.init(sysroot, f"file://{repo}", result.ref)                       # sysroot on a tmpfs/loop image
    dep = ops.default_deployment(sysroot)                                 # what boots next
    root = ops.deployment_path(sysroot, dep)                              # systemd-nspawn -D root ...

Inside a host, ``fusion host status/upgrade/...`` work on ``--sysroot /`` when nspawn binds
``SYSROOT:/sysroot``, ``SYSROOT/boot:/boot`` and ``SYSROOT/ostree/deploy/fusion/var:/var``; the
default tree creates ``/run/ostree-booted`` at boot (tmpfiles.d), so ostree sees the booted
deployment (tests/integration/test_host_booted.py does the same in a chroot).
"""
