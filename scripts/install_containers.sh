#!/bin/sh
# The container engine the container tests use (tests/containerkit.py): podman with runc, a registry
# (docker-registry) and a static busybox to make images of. Installed from Debian's packages when a piece
# is missing and we are root with apt-get; otherwise (or when the install fails) one line says why and the
# container tests skip. Never fails: `make test` goes on either way. Silent and quick (no apt) when every
# piece is there.
#
# Without recommends: podman's network stack is netavark (+ aardvark-dns) and `--init` needs catatonit,
# named here; the rest of the recommends (buildah, criu, slirp4netns, uidmap, fuse-overlayfs) serve
# rootless podman and image builds, which the tests do not use. A fresh install is 12 packages, 22 MB.
PACKAGES="podman runc docker-registry busybox-static catatonit netavark aardvark-dns"

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

missing_pieces() {
  missing=""
  for b in podman runc docker-registry; do
    have "$b" || missing="$missing $b"
  done
  # The image holds busybox alone: it must be static (ldd says so of a static executable).
  if [ ! -x /bin/busybox ] || ! LC_ALL=C ldd /bin/busybox 2>&1 | grep -q "not a dynamic executable"; then
    missing="$missing static-/bin/busybox"
  fi
  echo "${missing# }"
}

missing=$(missing_pieces)
[ -z "$missing" ] && exit 0

skip() { echo "Container engine missing ($missing): $1; the container tests will be skipped"; exit 0; }
[ "$(id -u)" = 0 ] || skip "not root, so not installed (as root: apt-get install $PACKAGES)"
have apt-get || skip "no apt-get to install it with"

echo "Installing the container engine for the container tests ($PACKAGES)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Waits for another apt's lock rather than failing on it; bounded in time all the same.
apt_get() {
  limit=$1
  shift
  DEBIAN_FRONTEND=noninteractive timeout "$limit" apt-get -q -o DPkg::Lock::Timeout=120 "$@" >"$log" 2>&1
}
install() { apt_get 600 install -y --no-install-recommends $PACKAGES; }
# A stale package list is the usual reason a first install fails.
install || { apt_get 300 update && install; }
missing=$(missing_pieces)
if [ -n "$missing" ]; then
  why=$(grep -E '^E:' "$log" | tail -n 1)
  skip "apt-get could not install it: ${why:-$(tail -n 1 "$log")}"
fi
exit 0
