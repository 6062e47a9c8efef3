# Shared by start.sh and stop.sh: is a daemon we started still running?

# Prints "<state> <starttime>" of a pid from /proc/<pid>/stat. The command
# name (field 2) may contain spaces, so cut after the last ')'. State is field 3,
# starttime (clock ticks since boot) field 22: together with the pid it names
# one process, so a recycled pid is not mistaken for our daemon.
proc_info() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    # shellcheck disable=SC2086
    set -- $stat
    echo "$1 ${20}"
}

# True if pid is running (a zombie counts as exited: our daemons are
# reparented to a PID 1 that may never reap them) and, if given, started at
# the recorded starttime.
pid_alive() {
    local info
    info="$(proc_info "$1")" || return 1
    [ "${info%% *}" != Z ] || return 1
    [ -z "${2:-}" ] || [ "${info#* }" = "$2" ]
}
