#!/bin/sh
# Back up a running task (tetris by default) at intervals, and restore the
# newest good backup after a crash or a reboot. Uses only the installed
# binaries: spartan, chkpnt, rstr, snapinspect.
#
#   backup.sh [-n NAME] [-i SECONDS] [-k KEEP] [-c COUNT] BACKUPS
#       Every SECONDS (default 60) checkpoint the task named NAME (default
#       tetris) into BACKUPS/<unix time>, keeping the newest KEEP backups
#       (default 10, 0 keeps all); stop after COUNT backups (default: never).
#   backup.sh -r BACKUPS
#       Restore the newest backup in BACKUPS that validates (rstr
#       --err-resume), skipping broken ones with a message.
#
# The system's control socket is found the way the binaries find it
# (--socket is not needed when SPARTAN_SOCKET or the default is right).
# Exit status: 0 done, 1 a checkpoint or the restore failed, 2 usage.
set -u

name=tetris
interval=60
keep=10
count=0
restore=0

usage() {
    echo "usage: $0 [-n NAME] [-i SECONDS] [-k KEEP] [-c COUNT] BACKUPS | $0 -r BACKUPS" >&2
    exit 2
}

while getopts n:i:k:c:rh opt; do
    case $opt in
    n) name=$OPTARG ;;
    i) interval=$OPTARG ;;
    k) keep=$OPTARG ;;
    c) count=$OPTARG ;;
    r) restore=1 ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
backups=$1

# The backups, oldest first (names are unix times, maybe with a -N suffix).
list() {
    ls -1 "$backups" 2>/dev/null | grep -E '^[0-9]+(-[0-9]+)?$' | sort -t- -k1,1n -k2,2n
}

if [ $restore -eq 1 ]; then
    for b in $(list | sed -n '1!G;h;$p'); do
        if snapinspect validate "$backups/$b" >/dev/null 2>&1; then
            echo "restoring $backups/$b"
            exec rstr "$backups/$b" --err-resume
        fi
        echo "skipping $backups/$b: it does not validate" >&2
    done
    echo "$0: no valid backup in $backups" >&2
    exit 1
fi

mkdir -p "$backups" || exit 1
made=0
status=0
while :; do
    ids=$(spartan tasks --name "$name" --id) || exit 1
    set -- $ids
    if [ $# -ne 1 ]; then
        echo "$0: expected one task named $name, found $#" >&2
        exit 1
    fi
    stamp=$(date +%s)
    dir=$backups/$stamp
    n=1
    while [ -e "$dir" ]; do
        dir=$backups/$stamp-$n
        n=$((n + 1))
    done
    if chkpnt -o "$dir" "$1"; then
        echo "backed up task $1 into $dir"
    else
        echo "$0: the checkpoint of task $1 failed" >&2
        status=1
    fi
    if [ "$keep" -gt 0 ]; then
        excess=$(($(list | wc -l) - keep))
        if [ $excess -gt 0 ]; then
            for old in $(list | head -n $excess); do
                rm -rf "${backups:?}/$old"
            done
        fi
    fi
    made=$((made + 1))
    if [ "$count" -gt 0 ] && [ $made -ge "$count" ]; then
        exit $status
    fi
    sleep "$interval"
done
