#!/usr/bin/env bash
# Installs the Debian packages aarlab's sandboxes and tests use, when they are missing:
# bubblewrap (sandboxes), postgresql (Postgres tests), chromium (dashboard browser tests).
set -euo pipefail
need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
[ -x /usr/lib/postgresql/*/bin/initdb ] 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
  echo "aarlab: please install these Debian packages: ${need[*]}" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "aarlab: installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
