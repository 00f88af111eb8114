#!/bin/sh
# The headless browser of the dashboard's browser tests (tests/web/): Debian's Chromium and its
# chromedriver, which Selenium drives (Selenium's own browser download cannot reach the internet here).
# Installed when missing and we are root with apt-get; otherwise (or when the install fails) one line says
# why and the browser tests skip. Never fails: `make test` goes on either way. Silent when both are there.
PACKAGES="chromium chromium-driver"

have() { command -v "$1" >/dev/null 2>&1; }
missing_pieces() {
  missing=""
  for b in chromium chromedriver; do
    have "$b" || missing="$missing $b"
  done
  echo "${missing# }"
}

missing=$(missing_pieces)
[ -z "$missing" ] && exit 0

skip() { echo "Browser missing ($missing): $1; the dashboard's browser tests will be skipped"; exit 0; }
[ "$(id -u)" = 0 ] || skip "not root, so not installed (as root: apt-get install $PACKAGES)"
have apt-get || skip "no apt-get to install it with"

echo "Installing a headless browser for the dashboard's tests ($PACKAGES)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt_get() {
  limit=$1
  shift
  DEBIAN_FRONTEND=noninteractive timeout "$limit" apt-get -q -o DPkg::Lock::Timeout=120 "$@" >"$log" 2>&1
}
install() { apt_get 600 install -y --no-install-recommends $PACKAGES; }
install || { apt_get 300 update && install; }
missing=$(missing_pieces)
if [ -n "$missing" ]; then
  why=$(grep -E '^E:' "$log" | tail -n 1)
  skip "apt-get could not install it: ${why:-$(tail -n 1 "$log")}"
fi
exit 0
