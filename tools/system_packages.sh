#!/usr/bin/env bash
# Install the Debian packages the tests need and that are missing; do nothing when all are there.
#
#   tools/system_packages.sh PACKAGE...
#
# The tests run real third-party servers and programs (prometheus-alertmanager, ...) from
# Debian's packages instead of mocks of them. `make test` runs this first. It needs root (or
# password-less sudo) and a reachable Debian mirror only when something is missing; when it
# cannot install, it says what is missing and how to install it, and fails: a test run that
# silently skipped those tests would look green without having tested them.
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 PACKAGE..." >&2
  exit 2
fi

missing=()
for package in "$@"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$package")
  fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

cannot() {
  echo "system-packages: $1; the tests need: ${missing[*]}." >&2
  echo "system-packages: install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
}

if ! command -v apt-get >/dev/null 2>&1; then
  cannot "no apt-get on this machine (not Debian or Ubuntu)"
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  cannot "not root and no password-less sudo"
fi

export DEBIAN_FRONTEND=noninteractive
export NEEDRESTART_SUSPEND=1  # needrestart (if installed) would scan every process after it
# Another engineer's or CI job's apt may hold the dpkg lock for a while: wait for it rather than
# fail at once.
apt=("${as_root[@]}" apt-get -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends)
echo "system-packages: installing ${missing[*]}" >&2
# A fresh container has no package lists: update them only when the install cannot find a
# package, so that the usual run does not hit the network.
if ! "${apt[@]}" install "${missing[@]}"; then
  "${apt[@]}" update || cannot "apt-get update failed (no network or no mirror?)"
  "${apt[@]}" install "${missing[@]}" || cannot "apt-get install failed"
fi
