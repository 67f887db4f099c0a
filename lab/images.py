"""The example apps' images, built here (no public registry is reachable) and pushed to the lab's.

Each image is a static busybox (Debian ``busybox-static``) plus a few files, imported with
``podman import`` into a throw-away podman storage (never the machine's own image store) and
pushed to the lab registry with ``podman push``. Names follow examples/guestbook.yaml
(``localhost:5000/fusion/...``; inside the hosts ``localhost:5000`` is mapped to the lab registry,
see :func:`lab.machine.etc_files`):

- ``fusion/guestbook-web:1``: busybox ``httpd`` on port 8080; ``/healthz`` answers ``ok``,
  ``/cgi-bin/guestbook`` lists the entries and ``?add=TEXT`` adds one. Entries are kept in the
  store at ``$REDIS_HOST:$REDIS_PORT``; without a reachable store, in the container's /tmp.
- ``fusion/redis:1``: a *redis-like* store, not Redis: ``redis-server [--dir DIR] ...`` runs a
  busybox ``httpd`` on port 6379 with a key-value CGI (``/cgi-bin/kv?KEY`` reads,
  ``?KEY=VALUE`` appends a line, data in DIR, default /data); ``redis-cli ping`` prints ``PONG``
  when it answers. Just enough for the example's commands and health checks, with no download.
- ``fusion/hello:1``: busybox ``httpd`` on port 8080 serving one page; the lab's smoke-test image.

Every image's entrypoint is ``/bin/serve``, a small shell that runs the command (``CMD``, or the
service's ``command``) as its child and stops it on SIGTERM, as a real server does.

Side effects: podman (in a scratch dir under /tmp), HTTP to the lab registry.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common.runner import run
from lab.state import LabState

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "httpd", "cat", "echo", "ls", "mkdir", "cut", "hostname", "sed", "grep", "sleep",
           "env", "date", "printf", "tr", "head", "tail", "nc", "rm", "touch", "true", "false", "id", "ps")

WEB_INDEX = (
    "<html><body><h1>Fusion guestbook</h1>"
    "<p><a href=\"/cgi-bin/guestbook\">entries</a></p></body></html>\n"
)

WEB_CGI = r"""#!/bin/sh
# The guestbook: ?add=TEXT adds an entry; entries live in the store ($REDIS_HOST:$REDIS_PORT).
echo "Content-Type: text/plain"
echo
STORE="http://${REDIS_HOST:-redis}:${REDIS_PORT:-6379}/cgi-bin/kv"
ADD=""
case "$QUERY_STRING" in add=*) ADD="${QUERY_STRING#add=}";; esac
echo "${GUESTBOOK_TITLE:-Fusion guestbook}"
if /bin/wget -q -O /dev/null -T 2 "$STORE?ping" 2>/dev/null; then
  [ -n "$ADD" ] && /bin/wget -q -O /dev/null -T 2 "$STORE?guestbook=$ADD"
  /bin/wget -q -O - -T 2 "$STORE?guestbook"
else
  [ -n "$ADD" ] && echo "$ADD" >> /tmp/guestbook
  cat /tmp/guestbook 2>/dev/null
fi
echo "-- served by $(hostname)"
"""

KV_CGI = r"""#!/bin/sh
# A tiny key-value store: ?KEY reads KEY, ?KEY=VALUE appends VALUE to KEY. Keys are [A-Za-z0-9_-].
echo "Content-Type: text/plain"
echo
DIR="${KV_DIR:-/data}"
KEY="${QUERY_STRING%%=*}"
case "$KEY" in ""|*[!A-Za-z0-9_-]*) echo "bad key"; exit 0;; esac
case "$QUERY_STRING" in
  ping) echo PONG;;
  *=*) echo "${QUERY_STRING#*=}" >> "$DIR/$KEY"; echo OK;;
  *) cat "$DIR/$KEY" 2>/dev/null;;
esac
"""

# busybox-static's own wget crashes (static glibc); this one speaks HTTP/1.0 through busybox nc.
# Scripts call it as /bin/wget: busybox sh would run its built-in applet for a bare `wget`.
WGET = r"""#!/bin/sh
# wget [-q] [-O FILE] [-T SECONDS] http://HOST[:PORT]/PATH  (exit 1 unless the answer is 2xx)
out=- t=5
while [ $# -gt 1 ]; do
  case "$1" in -O) out="$2"; shift;; -T) t="$2"; shift;; esac
  shift
done
url="${1#http://}"; hostport="${url%%/*}"; path="/${url#*/}"
[ "$path" = "/$url" ] && path=/
host="${hostport%%:*}"; port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=80
resp="$(printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" | nc -w "$t" "$host" "$port" | tr -d '\r')"
status="$(printf '%s\n' "$resp" | head -n 1 | cut -d ' ' -f 2)"
body="$(printf '%s\n' "$resp" | sed '1,/^$/d')"
if [ "$out" = "-" ]; then printf '%s\n' "$body"; else printf '%s\n' "$body" > "$out"; fi
case "$status" in 2??) exit 0;; *) exit 1;; esac
"""

REDIS_SERVER = r"""#!/bin/sh
# redis-like: `redis-server [--dir DIR] [other redis options, ignored]` serves the kv CGI on 6379.
DIR=/data
while [ $# -gt 0 ]; do
  case "$1" in --dir) DIR="$2"; shift;; esac
  shift
done
mkdir -p "$DIR"
export KV_DIR="$DIR"
exec /bin/httpd -f -v -p 6379 -h /www
"""

SERVE = r"""#!/bin/sh
# Every image's entrypoint: runs its command as a child and stops it on SIGTERM. (A bare httpd as
# the container's PID 1 ignores SIGTERM, so every stop would wait out the grace period.)
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT
wait "$child"
"""

REDIS_CLI = r"""#!/bin/sh
# redis-like client: `redis-cli ping` prints PONG when the local store answers.
case "$1" in
  ping|PING) /bin/wget -q -O - -T 2 "http://127.0.0.1:6379/cgi-bin/kv?ping";;
  *) echo "redis-cli: only 'ping' is supported" >&2; exit 1;;
esac
"""


@dataclass(frozen=True)
class Image:
    name: str  # repository/name:tag, without the registry
    files: dict[str, str]
    cmd: list[str]
    port: int
    executables: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def catalog() -> list[Image]:
    return [
        Image("fusion/guestbook-web:1",
              {"www/index.html": WEB_INDEX, "www/healthz": "ok\n", "www/cgi-bin/guestbook": WEB_CGI},
              ["/bin/httpd", "-f", "-v", "-p", "8080", "-h", "/www"], 8080, ("www/cgi-bin/guestbook",)),
        Image("fusion/redis:1",
              {"www/index.html": "redis-like kv store\n", "www/cgi-bin/kv": KV_CGI,
               "bin/redis-server": REDIS_SERVER, "bin/redis-cli": REDIS_CLI},
              ["/bin/redis-server"], 6379, ("www/cgi-bin/kv", "bin/redis-server", "bin/redis-cli")),
        Image("fusion/hello:1", {"www/index.html": "hello from fusion\n"},
              ["/bin/httpd", "-f", "-v", "-p", "8080", "-h", "/www"], 8080),
    ]


def rootfs_tar(image: Image, dest: Path) -> None:
    """A tarball of the image's root: busybox, its applet links, the image's files (pure-ish: only
    writes ``dest``)."""
    with tempfile.TemporaryDirectory(prefix="fusion-image.") as work:
        root = Path(work)
        (root / "bin").mkdir()
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        for applet in APPLETS:
            (root / "bin" / applet).symlink_to("busybox")
        for d in ("tmp", "data", "etc"):
            (root / d).mkdir(exist_ok=True)
        (root / "tmp").chmod(0o1777)
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
        (root / "etc" / "group").write_text("root:x:0:\n")
        for rel, content in image.files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
            p.chmod(0o755 if rel in image.executables else 0o644)
        for name, text in (("wget", WGET), ("serve", SERVE)):
            (root / "bin" / name).write_text(text)
            (root / "bin" / name).chmod(0o755)
        with tarfile.open(dest, "w") as tar:
            for p in sorted(root.iterdir()):
                tar.add(p, arcname=p.name, filter=_root_owned)


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def in_registry(registry: str, name: str) -> bool:
    repo, _, tag = name.partition(":")
    req = urllib.request.Request(
        f"http://{registry}/v2/{repo}/manifests/{tag or 'latest'}", method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                           "application/vnd.docker.distribution.manifest.v2+json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def push(image: Image, registry: str) -> None:
    """Import the image into a throw-away podman storage and push it to ``registry``."""
    # Not under the cache dir: podman refuses a runroot path longer than 50 characters.
    with tempfile.TemporaryDirectory(prefix="fl-img.") as work:
        podman = ["podman", "--root", f"{work}/root", "--runroot", f"{work}/run", "--storage-driver", "vfs"]
        tar = Path(work) / "rootfs.tar"
        rootfs_tar(image, tar)
        changes = ['ENTRYPOINT ["/bin/serve"]', f"CMD {json.dumps(image.cmd)}", f"EXPOSE {image.port}"]
        changes += [f"ENV {k}={v}" for k, v in {"PATH": "/bin", **image.env}.items()]
        args = [*podman, "import"]
        for c in changes:
            args += ["--change", c]
        local = f"localhost/{image.name}"
        run([*args, str(tar), local], timeout=300)
        run([*podman, "push", "--tls-verify=false", local, f"docker://{registry}/{image.name}"], timeout=300)


def ensure_images(state: LabState, progress: Callable[[str], None]) -> list[str]:
    """Build and push every image of :func:`catalog` the lab registry does not have yet."""
    pushed = []
    for image in catalog():
        if in_registry(state.registry, image.name):
            continue
        progress(f"image {image.name}")
        push(image, state.registry)
        pushed.append(image.name)
    return pushed
