# Shared by tools/start-local-slurm.sh and tools/stop-local-slurm.sh (sourced, not run).

STATE_DIR=/run/slurm-local
PID_RECORD=$STATE_DIR/started.pids

# A daemon counts as alive while any of its threads is not a zombie: PID 1 here reaps late, and an exiting
# multithreaded daemon shows a zombie leader while other threads still hold its port.
alive() {
    local pid=$1 t state
    [ -n "$pid" ] && [ -d "/proc/$pid/task" ] || return 1
    for t in /proc/"$pid"/task/*/stat; do
        state=$(sed -e 's/^.*) //' "$t" 2>/dev/null | cut -d' ' -f1) || continue
        [ -n "$state" ] && [ "$state" != Z ] && return 0
    done
    return 1
}
