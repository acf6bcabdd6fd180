#!/usr/bin/env bash
# Starts a single-node Slurm cluster (munged + slurmctld + slurmd, partition "debug") on this machine, for the
# toolbox's Slurm tests and for trying `ie-submit` (make SLURM=1) without a real cluster. Debian 12, root, no systemd.
# Installs munge, slurmctld, slurmd, slurm-client, openmpi-bin and libopenmpi-dev from Debian when missing,
# writes /etc/slurm/slurm.conf (the default path, so no SLURM_CONF is needed), starts the daemons, records the
# PIDs of the ones it started in /run/slurm-local/started.pids (tools/stop-local-slurm.sh stops only those) and
# waits until the node is idle. Prints "slurm ready" on success.
#
#   tools/start-local-slurm.sh              # ~18 s from nothing, under 1 s when installed
#   SLURM_LOCAL_KEEP_STATE=1 tools/start-local-slurm.sh   # keep job ids/state of the previous start
#   SLURM_LOCAL_NO_MPI=1 tools/start-local-slurm.sh       # skip Open MPI (Slurm only)
#   SLURM_LOCAL_NODES=2 tools/start-local-slurm.sh        # 2 nodes on this one machine, splitting its CPUs
#
# With SLURM_LOCAL_NODES=N > 1 the machine plays N nodes (<host>-1 ... <host>-N, one slurmd each on its own
# port, the CPUs and memory divided between them), so multi-node jobs (`sbatch -N2` + `srun --mpi=pmix`) run
# here. Slurm's PMIx plugin puts every step's client directory at the same path on each node; two slurmds on
# one host would collide there, so each further node's slurmd runs in its own mount namespace with its own
# copy of that directory (mpi.conf PMIxCliTmpDirBase).
#
# Why each step is needed is in docs (notes/slurm-local-cluster.md of the project's shared notes).
set -Eeuo pipefail
. "$(dirname "$0")/local-slurm-common.sh"

SPOOL=/var/spool/slurm-local
LOG_DIR=/var/log/slurm-local
CONF=/etc/slurm/slurm.conf
MARKER="# written by ie-toolbox tools/start-local-slurm.sh"
HOST=$(hostname -s)
NODES=${SLURM_LOCAL_NODES:-1}
case "$NODES" in ''|*[!0-9]*|0) echo "start-local-slurm: error: SLURM_LOCAL_NODES=$NODES, expected a positive integer" >&2; exit 1 ;; esac
MPI_CONF=/etc/slurm/mpi.conf
PMIX_DIR=$SPOOL/pmix
if [ "$NODES" = 1 ]; then
    NODE_NAMES=("$HOST")
    NODE_LIST=$HOST
else
    NODE_NAMES=()
    for i in $(seq "$NODES"); do NODE_NAMES+=("$HOST-$i"); done
    NODE_LIST="$HOST-[1-$NODES]"
fi

say() { echo "start-local-slurm: $*" >&2; }
die() { say "error: $*"; exit 1; }
# set -e ends the script at the first failing command: say which, so a failed start is never silent.
trap 'say "error: line $LINENO: \"$BASH_COMMAND\" failed"' ERR

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts system daemons)"

pid_from_file() { [ -s "$1" ] && tr -dc '0-9' < "$1" || true; }

# Starts a daemon with every inherited fd above 2 closed (munged keeps inherited fds open, which would hold a
# caller's pipe open forever) and stdio on its log file.
spawn() {
    local log=$1; shift
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec "$@" </dev/null >>"$log" 2>&1
    )
}

# ---- packages ---------------------------------------------------------------------------------------------
packages="munge slurmctld slurmd slurm-client"
[ "${SLURM_LOCAL_NO_MPI:-0}" = 1 ] || packages="$packages openmpi-bin libopenmpi-dev"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt may hold the dpkg lock (CI images update in the background): wait for it.
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    # policy-rc.d (exit 101: "action forbidden") stops the packages' own daemons from starting on install
    # (invoke-rc.d and deb-systemd-invoke both ask it); this script starts them by hand with its own
    # configuration. Without it, a fresh Debian starts munged and slurmctld with the packaged configuration and
    # the local nodes never become idle. An existing policy-rc.d is left as it is.
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    status=0
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null || status=$?
    [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$status" = 0 ] || die "apt-get install$missing failed ($status)"
fi

# Every node after the first runs in a private mount namespace (see the top). A chroot whose / is not a mount
# point refuses one: say so before anything is started, so that the caller can fall back to one node.
if [ "$NODES" -gt 1 ] && ! unshare --mount --propagation private true 2>/dev/null; then
    die "SLURM_LOCAL_NODES=$NODES needs a private mount namespace for each further node (unshare --mount), which this system refuses (a chroot whose / is not a mount point?); expected SLURM_LOCAL_NODES=1 here"
fi

mkdir -p "$STATE_DIR" "$SPOOL/ctld" "$SPOOL/d" "$LOG_DIR" /etc/slurm

# ---- already running? -------------------------------------------------------------------------------------
if [ -s "$PID_RECORD" ]; then
    all_alive=1
    while read -r name pid; do alive "$pid" || all_alive=0; done < "$PID_RECORD"
    if [ "$all_alive" = 1 ] && [ "$(sinfo -h -N -o %N 2>/dev/null | sort -u | wc -l)" = "$NODES" ] \
        && sinfo -h -n "${NODE_NAMES[0]}" -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        say "already running"
        echo "slurm ready"
        exit 0
    fi
    say "a previous start is partly gone; restarting what it started"
    "$(dirname "$0")/stop-local-slurm.sh" >/dev/null 2>&1 || true
fi

# ---- slurm.conf -------------------------------------------------------------------------------------------
for file in "$CONF" "$MPI_CONF"; do
    if [ -f "$file" ] && ! grep -qF "$MARKER" "$file"; then
        die "$file exists and was not written by this script; refusing to overwrite a real cluster's config"
    fi
done
hw=$(slurmd -C 2>/dev/null | head -1)
field() { echo "$hw" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
cpus=$(field CPUs); sockets=$(field SocketsPerBoard); cores=$(field CoresPerSocket); threads=$(field ThreadsPerCore)
memory=$(field RealMemory)
[ -n "$cpus" ] && [ -n "$memory" ] || die "slurmd -C did not report the node's hardware: '$hw'"
# A RealMemory above the real amount drains the node; keep 1 GiB for the system.
memory=$(( memory > 2048 ? memory - 1024 : memory ))
if [ "$NODES" -gt 1 ]; then
    [ "$cpus" -ge "$NODES" ] || die "SLURM_LOCAL_NODES=$NODES but this machine has $cpus CPUs, expected at most $cpus nodes"
    # Each node gets whole CPUs of its own; its topology is flattened to one socket.
    cpus=$(( cpus / NODES ))
    memory=$(( memory / NODES ))
    node_lines=""
    for i in $(seq "$NODES"); do
        [ -z "$node_lines" ] || node_lines+=$'\n'
        node_lines+="NodeName=$HOST-$i NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$(( 17000 + i )) CPUs=$cpus SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$memory State=UNKNOWN"
    done
    slurmd_files="SlurmdPidFile=$STATE_DIR/slurmd-%n.pid
SlurmdSpoolDir=$SPOOL/d-%n
SlurmdLogFile=$LOG_DIR/slurmd-%n.log"
else
    node_lines="NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus SocketsPerBoard=${sockets:-1} CoresPerSocket=${cores:-$cpus} ThreadsPerCore=${threads:-1} RealMemory=$memory State=UNKNOWN"
    slurmd_files="SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmdSpoolDir=$SPOOL/d
SlurmdLogFile=$LOG_DIR/slurmd.log"
fi
new_conf=$(cat <<EOF
$MARKER
ClusterName=local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# Requeued jobs wait cred_expire+1 s before they may run again (default 121 s).
AuthInfo=cred_expire=10
StateSaveLocation=$SPOOL/ctld
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
$slurmd_files
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
# Debian's Open MPI 4.1 only works with pmix (pmi2/none fail in MPI_Init).
MpiDefault=pmix
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job with no --mem gets the whole node and the next one waits.
DefMemPerCPU=1024
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
# The default scheduler takes seconds per job; tests chain several.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1,sched_interval=2
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmdTimeout=300
$node_lines
PartitionName=debug Nodes=$NODE_LIST Default=YES MaxTime=INFINITE State=UP
EOF
)
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
    printf '%s\n' "$new_conf" > "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
fi
new_mpi_conf="$MARKER
PMIxCliTmpDirBase=$PMIX_DIR"
if [ ! -f "$MPI_CONF" ] || [ "$(cat "$MPI_CONF")" != "$new_mpi_conf" ]; then
    printf '%s\n' "$new_mpi_conf" > "$MPI_CONF.tmp" && mv "$MPI_CONF.tmp" "$MPI_CONF"
fi
mkdir -p "$PMIX_DIR"

: > "$PID_RECORD.new"
record() { echo "$1 $2" >> "$PID_RECORD.new"; }

# ---- munged -----------------------------------------------------------------------------------------------
# systemd's RuntimeDirectory would create /run/munge; there is no systemd here.
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key >/dev/null
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
munge_pid=$(pid_from_file /run/munge/munged.pid)
if alive "$munge_pid"; then
    say "munged already running (pid $munge_pid), not started by this script: left alone"
else
    rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    spawn "$LOG_DIR/munged.out" runuser -u munge -- munged
    for _ in $(seq 100); do munge_pid=$(pid_from_file /run/munge/munged.pid); alive "$munge_pid" && break; sleep 0.05; done
    alive "$munge_pid" || die "munged did not start (see /var/log/munge/munged.log)"
    record munged "$munge_pid"
fi

# ---- slurmctld and slurmd ---------------------------------------------------------------------------------
start_daemon() {
    local name=$1 pidfile=$2; shift 2
    local pid
    pid=$(pid_from_file "$pidfile")
    if alive "$pid"; then
        say "$name already running (pid $pid), not started by this script: left alone"
        return
    fi
    rm -f "$pidfile"
    spawn "$LOG_DIR/$name.out" "$@"
    for _ in $(seq 200); do pid=$(pid_from_file "$pidfile"); alive "$pid" && break; sleep 0.05; done
    alive "$pid" || die "$name did not start (see $LOG_DIR/$name.log)"
    record "$name" "$pid"
}
if [ "${SLURM_LOCAL_KEEP_STATE:-0}" = 1 ]; then
    start_daemon slurmctld "$STATE_DIR/slurmctld.pid" slurmctld
else
    # A clean start: no jobs from an earlier start (job ids begin at 1 again).
    start_daemon slurmctld "$STATE_DIR/slurmctld.pid" slurmctld -c
fi
if [ "$NODES" = 1 ]; then
    start_daemon slurmd "$STATE_DIR/slurmd.pid" slurmd -N "$HOST"
else
    for i in $(seq "$NODES"); do
        node=$HOST-$i
        mkdir -p "$SPOOL/d-$node" "$SPOOL/pmix-$node"
        if [ "$i" = 1 ]; then
            start_daemon slurmd "$STATE_DIR/slurmd-$node.pid" slurmd -N "$node"
        else
            # Its own PMIx client directory (see the top): a private mount namespace binds pmix-<node> over it.
            start_daemon slurmd "$STATE_DIR/slurmd-$node.pid" unshare --mount --propagation private \
                sh -c "mount --bind '$SPOOL/pmix-$node' '$PMIX_DIR' && exec slurmd -N '$node'"
        fi
    done
fi
mv "$PID_RECORD.new" "$PID_RECORD"

# ---- wait for the node ------------------------------------------------------------------------------------
# Right after slurmctld starts the node is "unk" for a moment; jobs and requeues fail until it is idle.
for _ in $(seq 300); do
    ready=0
    for node in "${NODE_NAMES[@]}"; do
        state=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
        case "$state" in
            idle|mix|alloc) ready=$(( ready + 1 )) ;;
            drain*|down*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
        esac
    done
    if [ "$ready" = "$NODES" ]; then echo "slurm ready"; exit 0; fi
    sleep 0.1
done
die "the nodes did not become idle in 30 s (last state '${state:-none}'); see $LOG_DIR/slurmctld.log and slurmd*.log"
