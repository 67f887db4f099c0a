"""Everything cluster-wide. Talks to hosts only through etcd; never imports `host`."""
