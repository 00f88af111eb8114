# Sourced by scripts/install_*.sh: install Debian packages for a kind of test when pieces are missing, and
# never fail (`make test` goes on either way; the tests that need the pieces skip, saying why).
#
# The caller sets PACKAGES (what apt-get installs), WHAT ("Container engine"), FOR ("the container tests"),
# defines missing_pieces (prints the missing pieces, nothing when every piece is there), then calls
# apt_install_or_skip. Silent and quick (no apt) when nothing is missing.

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

apt_install_or_skip() {
  missing=$(missing_pieces)
  [ -z "$missing" ] && exit 0
  [ "$(id -u)" = 0 ] || _skip "not root, so not installed (as root: apt-get install $PACKAGES)"
  have apt-get || _skip "no apt-get to install it with"
  echo "Installing what $FOR need ($PACKAGES)"
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  _install || { _apt_get 300 update && _install; }  # (a stale package list is the usual reason a first install fails)
  missing=$(missing_pieces)
  if [ -n "$missing" ]; then
    why=$(grep -E '^E:' "$log" | tail -n 1)
    _skip "apt-get could not install it: ${why:-$(tail -n 1 "$log")}"
  fi
  exit 0
}

_skip() { echo "$WHAT missing ($missing): $1; $FOR will be skipped"; exit 0; }

# Waits for another apt's lock rather than failing on it; bounded in time all the same.
_apt_get() {
  limit=$1
  shift
  DEBIAN_FRONTEND=noninteractive timeout "$limit" apt-get -q -o DPkg::Lock::Timeout=120 "$@" >"$log" 2>&1
}

_install() { _apt_get 600 install -y --no-install-recommends $PACKAGES; }
