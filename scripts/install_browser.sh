#!/bin/sh
# The headless browser of the dashboard's browser tests (tests/web/): Debian's Chromium and its
# chromedriver, which Selenium drives (Selenium's own browser download cannot reach the internet here).
# Installed when missing and we are root with apt-get (scripts/apt_install.sh); otherwise one line says why
# and the browser tests skip. Never fails.
PACKAGES="chromium chromium-driver"
WHAT="Browser"
FOR="the dashboard's browser tests"

. "$(dirname "$0")/apt_install.sh"

missing_pieces() {
  missing=""
  for b in chromium chromedriver; do
    have "$b" || missing="$missing $b"
  done
  echo "${missing# }"
}

apt_install_or_skip
