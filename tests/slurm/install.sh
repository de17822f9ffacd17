#!/usr/bin/env bash
# Install Debian's slurm-wlm and munge when missing (root, network to the Debian mirrors).
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v sbatch >/dev/null; then
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install.sh: needs root to apt-get install slurm-wlm munge" >&2; exit 3; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurm-wlm munge > /dev/null
