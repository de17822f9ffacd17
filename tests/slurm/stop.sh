#!/usr/bin/env bash
# Stop the daemons tests/slurm/start.sh BASE started (by the pids it recorded) and remove the
# /etc/slurm/slurm.conf symlink it made. Safe to call twice.
set -uo pipefail

BASE=${1:?usage: stop.sh BASE_DIR}
BASE=$(cd "$BASE" 2>/dev/null && pwd) || exit 0
[ -f "$BASE/pids" ] || exit 0

# slurmd and slurmctld first, munged last (the others authenticate through it)
for name in slurmd slurmctld munged; do
    pid=$(awk -v n="$name" '$1 == n {print $2}' "$BASE/pids")
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
done
if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$BASE/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf
fi
rm -f "$BASE/pids"
echo "stop.sh: stopped the test cluster in $BASE"
