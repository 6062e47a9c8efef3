#!/usr/bin/env bash
# Install the Debian packages for a single-node SLURM cluster with accounting:
# slurmctld + slurmd + client tools, slurmdbd, munge and MariaDB.
#
# Idempotent and fast when everything is already there: it asks dpkg first and
# only touches apt when something is missing. Needs root (or sudo) and apt.
# Nothing is started here; scripts/slurm/start.sh does that.
set -euo pipefail

# slurm-wlm is the meta package (slurmctld, slurmd, slurm-client); the rest are
# listed by name so that a partial install is noticed and completed.
PACKAGES=(slurm-wlm slurmctld slurmd slurm-client slurmdbd munge mariadb-server mariadb-client)

is_installed() {
    # "install ok installed" is dpkg's status for a fully configured package.
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "slurm install: all packages present (${PACKAGES[*]})"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "slurm install: apt-get not found; install ${missing[*]} by hand" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "slurm install: need root (or sudo) to install ${missing[*]}" >&2
        exit 1
    fi
fi

echo "slurm install: installing ${missing[*]}"

# Keep maintainer scripts from starting daemons on machines that have an init
# system: start.sh runs its own copies with state under one folder, and a
# system-wide munged/mariadbd/slurmctld would fight with them for sockets and
# ports. policy-rc.d exit code 101 means "action forbidden". Only add one if
# the machine has none, and always remove ours again.
POLICY=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    added_policy=1
fi
cleanup() {
    if [ "$added_policy" = 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# Package lists may be absent or stale on a fresh machine: update once.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" "${PACKAGES[@]}"

for pkg in "${PACKAGES[@]}"; do
    if ! is_installed "$pkg"; then
        echo "slurm install: $pkg is still not installed after apt-get" >&2
        exit 1
    fi
done
echo "slurm install: done"
