#!/usr/bin/env bash
# Start a single-node SLURM cluster with accounting on this machine:
#   munged -> mariadbd -> slurmdbd -> slurmctld -> slurmd
# All state (configs, MariaDB datadir, spool, logs, pids) lives under one
# folder, $GROKKING_SLURM_DIR (default /tmp/grokking-slurm).
#
# Idempotent: if the daemons this script started earlier are still alive and
# the cluster answers (node idle/usable, sacct works), it does nothing.
# Otherwise it stops whatever it had started before and starts everything
# again, keeping the saved state (job ids, accounting database).
#
# Usage: start.sh            start (or confirm running), print `export SLURM_CONF=...`
#        start.sh --check    exit 0 if the cluster is up and healthy, 1 if not; starts nothing
#
# Environment:
#   GROKKING_SLURM_DIR        state folder (default /tmp/grokking-slurm)
#   GROKKING_SLURM_PORT_BASE  first of 4 TCP ports on 127.0.0.1 (default 6817):
#                             slurmctld, slurmd, slurmdbd, mariadbd
#   GROKKING_SLURM_TIMEOUT    seconds to wait for each daemon (default 60)
#
# Needs root: munged must use the system socket (/run/munge/munge.socket.2,
# slurmdbd ignores AuthInfo=socket=), and SlurmUser/SlurmdUser are root.
set -euo pipefail

STATE_DIR="${GROKKING_SLURM_DIR:-/tmp/grokking-slurm}"
PORT_BASE="${GROKKING_SLURM_PORT_BASE:-6817}"
TIMEOUT="${GROKKING_SLURM_TIMEOUT:-60}"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

CLUSTER=grokking
PARTITION=debug
CTLD_PORT=$PORT_BASE
SLURMD_PORT=$((PORT_BASE + 1))
DBD_PORT=$((PORT_BASE + 2))
DB_PORT=$((PORT_BASE + 3))

ETC="$STATE_DIR/etc"
LOG="$STATE_DIR/log"
RUN="$STATE_DIR/run"
DB_DIR="$STATE_DIR/mysql"
PIDS_FILE="$STATE_DIR/pids"
MARKER="$STATE_DIR/.grokking-slurm"   # lets stop.sh --wipe know the folder is ours
SLURM_CONF_FILE="$ETC/slurm.conf"
DBD_CONF_FILE="$ETC/slurmdbd.conf"
DB_SOCKET="$RUN/mysqld.sock"
export SLURM_CONF="$SLURM_CONF_FILE"

case "$STATE_DIR" in
    /*) ;;
    *) echo "start.sh: GROKKING_SLURM_DIR must be an absolute path" >&2; exit 2 ;;
esac
if [[ "$STATE_DIR" =~ [[:space:]] ]]; then
    # The paths go into slurm.conf unquoted.
    echo "start.sh: GROKKING_SLURM_DIR must not contain spaces" >&2
    exit 2
fi

MODE=start
case "${1:-}" in
    "") ;;
    --check) MODE=check ;;
    -h | --help) sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 0 ;;
    *) echo "start.sh: unknown argument: $1" >&2; exit 2 ;;
esac

log() { echo "slurm start: $*" >&2; }

# ---------------------------------------------------------------- processes

source "$(dirname "${BASH_SOURCE[0]}")/procs.sh"  # proc_info, pid_alive

# pids file lines: "<name> <pid> <starttime>", in start order.
recorded_daemons_alive() {
    [ -s "$PIDS_FILE" ] || return 1
    local name pid start
    while read -r name pid start; do
        [ -n "$name" ] || continue
        pid_alive "$pid" "$start" || return 1
    done <"$PIDS_FILE"
}

port_in_use() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# ----------------------------------------------------------------- health

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

node_name() { hostname -s; }

# Long node state as sinfo prints it, e.g. idle, mixed, allocated, drained,
# "idle*" when slurmd does not answer.
node_state() { sinfo -h -n "$(node_name)" -o %T 2>/dev/null | head -n1; }

node_usable() {
    case "$(node_state)" in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

sacct_ok() { sacct -n -X -a -S now-1hours -o JobID >/dev/null 2>&1; }

# slurmctld has registered with slurmdbd once the cluster has a ControlHost.
ctld_registered() {
    [ -n "$(sacctmgr -n -P show cluster "$CLUSTER" format=ControlHost 2>/dev/null)" ]
}

cluster_healthy() {
    [ -f "$SLURM_CONF_FILE" ] && munge_ok \
        && scontrol ping 2>/dev/null | grep -q 'is UP' \
        && node_usable && sacct_ok
}

print_env() {
    echo "SLURM cluster '$CLUSTER' up: partition $PARTITION, node $(node_name), state in $STATE_DIR"
    echo "export SLURM_CONF=$SLURM_CONF_FILE"
}

if [ "$MODE" = check ]; then
    if recorded_daemons_alive && cluster_healthy; then
        echo "slurm cluster in $STATE_DIR is up"
        exit 0
    fi
    echo "slurm cluster in $STATE_DIR is not (fully) up"
    exit 1
fi

# ------------------------------------------------------------------ start

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (munged, slurmd and slurmctld run as root here)"
    exit 1
fi
for cmd in munged munge unmunge mariadbd mariadb mariadb-install-db slurmdbd slurmctld slurmd sbatch sacct sacctmgr; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        log "$cmd not found; run scripts/slurm/install.sh first"
        exit 1
    fi
done

mkdir -p "$STATE_DIR"
# One start/stop at a time (e.g. several pytest processes starting the fixture).
exec 9>"$STATE_DIR/.lock"
if ! flock -w 300 9; then
    log "could not lock $STATE_DIR/.lock within 300 s"
    exit 1
fi
export GROKKING_SLURM_LOCK_HELD=1   # tells stop.sh, called from here, not to lock again

if recorded_daemons_alive && cluster_healthy; then
    log "already running"
    print_env
    exit 0
fi

if [ -s "$PIDS_FILE" ]; then
    log "cluster in $STATE_DIR is not fully up; stopping what is left of it first"
    "$SCRIPT_DIR/stop.sh"
fi

T0=$SECONDS
mkdir -p "$ETC" "$LOG" "$RUN" "$STATE_DIR/ctld" "$STATE_DIR/slurmd"
touch "$MARKER"
: >"$PIDS_FILE"

STARTED_THIS_RUN=0
on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "$STARTED_THIS_RUN" = 1 ]; then
        log "start failed; stopping the daemons started so far (logs stay in $LOG)"
        "$SCRIPT_DIR/stop.sh" >&2 || true
    fi
}
trap on_exit EXIT

die() {
    # die MESSAGE [DAEMON...]: print the message and the tail of each daemon's
    # log file and of its captured stdout/stderr (where startup errors go).
    local msg="$1"
    shift
    log "ERROR: $msg"
    local name f
    for name in "$@"; do
        for f in "$LOG/$name.log" "$LOG/$name.out"; do
            if [ -s "$f" ]; then
                echo "----- last lines of $f -----" >&2
                tail -n 25 "$f" >&2
            fi
        done
    done
    exit 1
}

# launch NAME CMD...: start a daemon in the foreground mode of its own,
# detached into a new session (so a Ctrl-C in pytest does not reach it), and
# record its pid. Foreground mode means $! is the daemon itself, no pid files
# to trust.
LAST_PID=
launch() {
    local name="$1"
    shift
    echo "===== $(date '+%F %T') start.sh launching: $*" >>"$LOG/$name.out"
    # 9>&-: the daemon must not inherit (and so hold forever) our lock.
    setsid "$@" >>"$LOG/$name.out" 2>&1 </dev/null 9>&- &
    LAST_PID=$!
    STARTED_THIS_RUN=1
    local info
    info="$(proc_info "$LAST_PID")" || die "$name exited at once" "$name"
    echo "$name $LAST_PID ${info#* }" >>"$PIDS_FILE"
    log "started $name (pid $LAST_PID)"
}

# wait_until DESCRIPTION DAEMON PID CMD...: poll CMD until it succeeds; fail
# (showing DAEMON's logs) early if PID died, or after $TIMEOUT seconds.
wait_until() {
    local what="$1" name="$2" pid="$3"
    shift 3
    local deadline=$((SECONDS + TIMEOUT))
    until "$@"; do
        if ! pid_alive "$pid"; then
            die "$what: $name (pid $pid) exited" "$name"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "$what: not ready after ${TIMEOUT}s" "$name"
        fi
        sleep 0.5
    done
}

check_port_free() {
    if port_in_use "$1"; then
        die "port $1 on 127.0.0.1 (for $2) is already in use by another program; \
stop it or set GROKKING_SLURM_PORT_BASE to a free range"
    fi
}

# --------------------------------------------------------------- munged

# slurmdbd talks to munged only on the compiled-in socket, so a munged already
# serving it (from the system or another tool) is reused and not recorded.
ensure_munge() {
    if munge_ok; then
        log "munged already answers on the default socket; using it"
        return
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
    chmod 0755 /run/munge
    chmod 0700 /var/log/munge /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        if ! mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null; then
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    # A socket left over from a munged that died would make the new one refuse.
    if [ -S /run/munge/munge.socket.2 ]; then rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock; fi

    # --force: munged refuses to run as root otherwise.
    launch munged munged --foreground --force \
        --log-file="$LOG/munged.log" --pid-file="$RUN/munged.pid"
    wait_until "munged" munged "$LAST_PID" munge_ok
}

# -------------------------------------------------------------- mariadbd

# Runs the SQL on stdin as the DB root user.
db() { mariadb --no-defaults --socket="$DB_SOCKET" -uroot; }
db_ping() { mariadb-admin --no-defaults --socket="$DB_SOCKET" -uroot ping >/dev/null 2>&1; }

# A private MariaDB instance: own datadir and socket, TCP only on 127.0.0.1,
# so a system MariaDB (if any) is left alone. Runs as root; root connects over
# the socket with unix_socket auth, slurmdbd over TCP with a password.
ensure_mariadb() {
    if [ ! -d "$DB_DIR/mysql" ]; then
        log "initialising MariaDB datadir $DB_DIR"
        rm -rf "$DB_DIR"
        mariadb-install-db --no-defaults --datadir="$DB_DIR" --user=root \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOG/mariadb-install-db.log" 2>&1 \
            || die "mariadb-install-db failed" mariadb-install-db
    fi
    rm -f "$DB_SOCKET"
    # innodb_lock_wait_timeout=900 is what slurmdbd asks for (it warns otherwise).
    launch mariadbd mariadbd --no-defaults \
        --datadir="$DB_DIR" --user=root \
        --socket="$DB_SOCKET" --port="$DB_PORT" --bind-address=127.0.0.1 \
        --skip-name-resolve --pid-file="$RUN/mariadbd.pid" \
        --log-error="$LOG/mariadbd.log" \
        --innodb-buffer-pool-size=1G --innodb-lock-wait-timeout=900
    wait_until "mariadbd" mariadbd "$LAST_PID" db_ping

    local pass_file="$ETC/db.password"
    if [ ! -s "$pass_file" ]; then
        (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$pass_file")
    fi
    DB_PASS="$(cat "$pass_file")"
    db <<SQL || die "could not create the accounting database" mariadbd
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
}

# ----------------------------------------------------------------- configs

write_configs() {
    local node cpus mem
    node="$(node_name)"
    # `slurmd -C` prints this machine's node line; take CPUs and RealMemory
    # from it. Sockets/cores/threads are left out on purpose: with CR_CPU a
    # node line that names them would allocate whole cores, and we want one
    # job per CPU.
    local probe
    probe="$(slurmd -C 2>/dev/null | head -n1)" || true
    cpus="$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$probe")"
    mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$probe")"
    [ -n "$cpus" ] || cpus="$(nproc)"
    [ -n "$mem" ] || mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024))
    # A job that asks for no memory gets its CPU's share, so every CPU can run
    # one default job at the same time.
    local def_mem=$((mem / cpus))

    cat >"$SLURM_CONF_FILE" <<EOF
# Generated by scripts/slurm/start.sh; rewritten on every (re)start.
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
# cred_expire is also how long a requeued job is held before it may start
# again (default 120 s); 10 s keeps requeue tests quick on one local node.
AuthInfo=cred_expire=10

StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true

# No cgroups here: track job processes through /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
MpiDefault=none
SwitchType=switch/none

# One job per CPU (and its memory), so array tasks run side by side.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$def_mem
SchedulerType=sched/backfill
# Look at pending jobs every few seconds, not every 60/30 s: a requeued job
# would otherwise wait for the next pass after its hold ends.
SchedulerParameters=sched_interval=2,bf_interval=5

# Reject at submit time a job the partition can never run (e.g. -c 4 on 2
# CPUs) instead of leaving it pending forever with reason PartitionConfig.
EnforcePartLimits=ALL

JobRequeue=1
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
# Trust this file over what slurmd measures: a RealMemory that drifts by a few
# MB must not drain the only node.
SlurmdParameters=config_overrides

AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
JobCompType=jobcomp/none

# No GresTypes: there are no GPUs; jobs asking for GPUs are rejected at submit.
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

    # slurmdbd reads slurmdbd.conf from the folder of \$SLURM_CONF. It holds the
    # DB password: mode 600, owned by SlurmUser (root), or slurmdbd refuses it.
    (umask 077 && cat >"$DBD_CONF_FILE" <<EOF
# Generated by scripts/slurm/start.sh; rewritten on every (re)start.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    )
    chown root:root "$DBD_CONF_FILE"
    chmod 600 "$DBD_CONF_FILE"
}

# ------------------------------------------------------------ slurm daemons

cluster_listed() {
    sacctmgr -n -P list cluster format=Cluster 2>/dev/null | grep -qx "$CLUSTER"
}

dbd_answers() { sacctmgr -n list cluster >/dev/null 2>&1; }

ensure_slurmdbd() {
    launch slurmdbd slurmdbd -D
    wait_until "slurmdbd" slurmdbd "$LAST_PID" dbd_answers
    if ! cluster_listed; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null \
            || die "sacctmgr add cluster $CLUSTER failed" slurmdbd
        log "registered cluster $CLUSTER in the accounting database"
    fi
}

ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

ensure_slurmctld() {
    # -i: carry on past unreadable state files rather than refuse to start.
    launch slurmctld slurmctld -D -i -f "$SLURM_CONF_FILE"
    wait_until "slurmctld" slurmctld "$LAST_PID" ctld_up
    wait_until "slurmctld registering with slurmdbd" slurmctld "$LAST_PID" \
        ctld_registered
}

RESUMED=0
node_ready() {
    local state
    state="$(node_state)"
    case "$state" in
        idle | mixed | allocated | completing) return 0 ;;
        drain* | down*)
            # Left drained/down by an earlier run (e.g. slurmd killed while a job
            # ran); put it back once.
            if [ "$RESUMED" = 0 ]; then
                RESUMED=1
                log "node is $state; resuming it"
                scontrol update nodename="$(node_name)" state=resume >/dev/null 2>&1 || true
            fi
            return 1 ;;
        *) return 1 ;;
    esac
}

ensure_slurmd() {
    launch slurmd slurmd -D -N "$(node_name)" -f "$SLURM_CONF_FILE"
    wait_until "slurmd (node $(node_name) idle in sinfo)" slurmd "$LAST_PID" node_ready
}

# ------------------------------------------------------------------- main

# Our earlier daemons are stopped by now: anything still listening on our
# ports belongs to someone else. Check before starting anything.
check_port_free "$CTLD_PORT" slurmctld
check_port_free "$SLURMD_PORT" slurmd
check_port_free "$DBD_PORT" slurmdbd
check_port_free "$DB_PORT" mariadbd
ensure_munge
ensure_mariadb
write_configs
ensure_slurmdbd
ensure_slurmctld
ensure_slurmd
wait_until "sacct" slurmdbd "$(awk '$1 == "slurmdbd" {print $2}' "$PIDS_FILE")" sacct_ok

cat >"$STATE_DIR/env.sh" <<EOF
# Source this to use the cluster started by scripts/slurm/start.sh.
export SLURM_CONF=$SLURM_CONF_FILE
export GROKKING_SLURM_DIR=$STATE_DIR
EOF

log "cluster up in $((SECONDS - T0))s"
print_env
