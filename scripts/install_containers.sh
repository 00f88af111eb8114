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
WHAT="Container engine"
FOR="the container tests"

. "$(dirname "$0")/apt_install.sh"

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

apt_install_or_skip
