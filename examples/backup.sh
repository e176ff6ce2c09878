#!/bin/sh
# Back up a running task (tetris by default) at intervals, and restore the
# newest good backup after a crash or a reboot. Uses only the installed
# binaries: spartan, chkpnt, rstr, snapinspect.
#
#   backup.sh [-n NAME] [-i SECONDS] [-k KEEP] [-f FULL] [-c COUNT] BACKUPS
#       Every SECONDS (default 60) checkpoint the task named NAME (default
#       tetris) into BACKUPS/<unix time>, keeping at least the newest KEEP
#       backups (default 10, 0 keeps all); stop after COUNT backups
#       (default: never). Every FULL-th backup (default 10; 1: all) is a
#       full image, the others are incremental (chkpnt --parent) on the
#       backup before, storing only the pages the task changed since; a
#       backup is deleted only with the incremental ones that need it (a
#       whole chain, from a full image up to the next one).
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
full=10
count=0
restore=0

usage() {
    echo "usage: $0 [-n NAME] [-i SECONDS] [-k KEEP] [-f FULL] [-c COUNT] BACKUPS | $0 -r BACKUPS" >&2
    exit 2
}

while getopts n:i:k:f:c:rh opt; do
    case $opt in
    n) name=$OPTARG ;;
    i) interval=$OPTARG ;;
    k) keep=$OPTARG ;;
    f) full=$OPTARG ;;
    c) count=$OPTARG ;;
    r) restore=1 ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
[ "$full" -ge 1 ] 2>/dev/null || usage
backups=$1

# The backups, oldest first (names are unix times, maybe with a -N suffix).
list() {
    ls -1 "$backups" 2>/dev/null | grep -E '^[0-9]+(-[0-9]+)?$' | sort -t- -k1,1n -k2,2n
}

# Whether backup $1 is a full image (no parent chain).
is_full() {
    snapinspect show "$backups/$1" 2>/dev/null | grep -q '^parent chain none'
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
since_full=$full
last=
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
    if [ -n "$last" ] && [ "$since_full" -lt "$full" ] &&
        chkpnt -o "$dir" --parent "$last" "$1" >/dev/null; then
        echo "backed up task $1 into $dir (incremental on $last)"
        since_full=$((since_full + 1))
        last=$dir
    elif chkpnt -o "$dir" "$1" >/dev/null; then
        echo "backed up task $1 into $dir"
        since_full=1
        last=$dir
    else
        echo "$0: the checkpoint of task $1 failed" >&2
        status=1
        last=
    fi
    if [ "$keep" -gt 0 ]; then
        # Delete the oldest chain (a full image and the incremental ones
        # after it, up to the next full one) while KEEP remain after it.
        while :; do
            set -- $(list)
            total=$#
            [ $total -gt "$keep" ] || break
            chain=1
            shift
            for b in "$@"; do
                is_full "$b" && break
                chain=$((chain + 1))
            done
            [ $((total - chain)) -ge "$keep" ] || break
            for old in $(list | head -n $chain); do
                rm -rf "${backups:?}/$old"
            done
        done
    fi
    made=$((made + 1))
    if [ "$count" -gt 0 ] && [ $made -ge "$count" ]; then
        exit $status
    fi
    sleep "$interval"
done
