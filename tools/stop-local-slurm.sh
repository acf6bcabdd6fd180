#!/usr/bin/env bash
# Stops the local Slurm cluster (one node or SLURM_LOCAL_NODES) that tools/start-local-slurm.sh started: cancels every job first (a
# stopped slurmd would leave its job steps running), then stops only the daemons whose PIDs the start script
# recorded, never anything found by name. Daemons it did not start are left alone.
set -euo pipefail
. "$(dirname "$0")/local-slurm-common.sh"

say() { echo "stop-local-slurm: $*" >&2; }

if [ ! -s "$PID_RECORD" ]; then
    say "nothing to stop (no $PID_RECORD)"
    exit 0
fi

# Cancel every job while slurmctld still runs, and wait for the queue to drain (at most 15 s).
if grep -q '^slurmctld ' "$PID_RECORD" && command -v squeue >/dev/null; then
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 150); do
            [ -z "$(squeue -h -o %i 2>/dev/null || true)" ] && break
            sleep 0.1
        done
    fi
fi

# slurmd first (it owns the job steps), then slurmctld, then munged.
# (SLURM_LOCAL_NODES > 1 records one slurmd per node.)
for name in slurmd slurmctld munged; do
    for pid in $(awk -v n="$name" '$1 == n { print $2 }' "$PID_RECORD"); do
        if ! alive "$pid"; then continue; fi
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do alive "$pid" || break; sleep 0.05; done
        if alive "$pid"; then
            say "$name (pid $pid) ignored TERM for 5 s: KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
done
rm -f "$PID_RECORD"
echo "slurm stopped"
