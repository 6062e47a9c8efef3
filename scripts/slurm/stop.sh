#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by scripts/slurm/start.sh.
#
# Only the daemons start.sh recorded in $GROKKING_SLURM_DIR/pids are stopped,
# by pid (checked against the recorded start time, so a recycled pid is never
# signalled). Jobs still queued or running are cancelled first, so that no job
# step keeps running after its slurmd is gone.
#
# Usage: stop.sh [--wipe]
#   --wipe   also delete the state folder (configs, accounting DB, job state,
#            logs); job ids start again at 1 on the next start.
set -euo pipefail

STATE_DIR="${GROKKING_SLURM_DIR:-/tmp/grokking-slurm}"
PIDS_FILE="$STATE_DIR/pids"
MARKER="$STATE_DIR/.grokking-slurm"
STOP_TIMEOUT="${GROKKING_SLURM_STOP_TIMEOUT:-30}"

WIPE=0
for arg in "$@"; do
    case "$arg" in
        --wipe) WIPE=1 ;;
        -h | --help) sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 0 ;;
        *) echo "stop.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "slurm stop: $*" >&2; }

source "$(dirname "${BASH_SOURCE[0]}")/procs.sh"  # proc_info, pid_alive

# Wait up to $3 seconds for pid $1 (starttime $2) to exit.
wait_gone() {
    local deadline=$((SECONDS + $3))
    while pid_alive "$1" "$2"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

if [ -d "$STATE_DIR" ] && [ -z "${GROKKING_SLURM_LOCK_HELD:-}" ]; then
    exec 9>"$STATE_DIR/.lock"
    flock -w 300 9 || { log "could not lock $STATE_DIR/.lock"; exit 1; }
fi

if [ -s "$PIDS_FILE" ]; then
    mapfile -t entries <"$PIDS_FILE"

    # Cancel jobs while slurmctld and slurmd are still there to do it: a job
    # step (slurmstepd + the job) outlives slurmd otherwise.
    ctld_alive=0
    for entry in "${entries[@]}"; do
        read -r name pid start <<<"$entry"
        if [ "$name" = slurmctld ] && pid_alive "$pid" "$start"; then ctld_alive=1; fi
    done
    if [ "$ctld_alive" = 1 ] && [ -f "$STATE_DIR/etc/slurm.conf" ]; then
        export SLURM_CONF="$STATE_DIR/etc/slurm.conf"
        jobs="$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)"
        if [ -n "${jobs// /}" ]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            deadline=$((SECONDS + 20))
            while [ -n "$(squeue -h -o %A 2>/dev/null || true)" ] && [ "$SECONDS" -lt "$deadline" ]; do
                sleep 0.5
            done
        fi
    fi

    # Stop in reverse start order: slurmd, slurmctld, slurmdbd, mariadbd, munged.
    for ((i = ${#entries[@]} - 1; i >= 0; i--)); do
        read -r name pid start <<<"${entries[$i]}"
        [ -n "${name:-}" ] || continue
        if ! pid_alive "$pid" "$start"; then
            log "$name (pid $pid) already gone"
            continue
        fi
        kill -TERM "$pid" 2>/dev/null || true
        if wait_gone "$pid" "$start" "$STOP_TIMEOUT"; then
            log "stopped $name (pid $pid)"
        else
            log "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" "$start" 10 || { log "ERROR: $name (pid $pid) does not die"; exit 1; }
        fi
    done
    rm -f "$PIDS_FILE"
else
    log "no daemons recorded in $PIDS_FILE; nothing to stop"
fi

if [ "$WIPE" = 1 ] && [ -d "$STATE_DIR" ]; then
    # Only delete a folder start.sh made (it leaves a marker file there).
    if [ ! -e "$MARKER" ]; then
        log "ERROR: $STATE_DIR has no $(basename "$MARKER") marker; not deleting it"
        exit 1
    fi
    rm -rf "$STATE_DIR"
    log "wiped $STATE_DIR"
fi
