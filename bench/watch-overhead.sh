#!/usr/bin/env bash
# Host overhead of `vigil watch`: the time of a write-heavy workload (untar
# of /usr/share/man, about 24k entries, uncompressed) into a watched tree,
# with nothing watching and under each watcher variant, interleaved run by
# run so that drift on a shared machine hits all alike. Reports medians of
# the workload's wall time and of its own CPU time (user+sys: the kernel
# work fanotify and audit add to every write is charged to the writer),
# the watcher's CPU, and the ratios. Also samples an idle watcher's CPU.
#
#   bench/watch-overhead.sh [-n RUNS] [-d DIR] [-p NICE] [-v "VARIANTS"]
#
# Variants (default all): none, inotifywait (inotifywait -m -r: the floor
# any inotify watcher pays, no hashing, no who-data), fanotify-floor
# (bench/fanotify-floor: vigil's fanotify mark and mask, events read and
# thrown away: the floor any fanotify watcher pays), vigil (defaults:
# fanotify, who-data in process mode, evidence), vigil-syscall
# (--who-mode=syscall: audit rules on every write, as auditd-based FIM
# who-data does), vigil-nowho (--no-who). -p runs the watchers at that nice
# value (the shipped systemd unit uses Nice=10); 0 is the workload's own.
#
# Needs root (fanotify, audit). DIR defaults to /dev/shm: tmpfs does no I/O,
# so every cost shows, and ext4 here varies several-fold in create speed on
# its own.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
parent=/dev/shm
prio=0
variants="none inotifywait fanotify-floor vigil vigil-syscall vigil-nowho"
while getopts "n:d:p:v:" o; do
	case $o in
	n) runs=$OPTARG ;;
	d) parent=$OPTARG ;;
	p) prio=$OPTARG ;;
	v) variants=$OPTARG ;;
	*) echo "usage: $0 [-n RUNS] [-d DIR] [-p NICE] [-v VARIANTS]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "watch-overhead: needs root" >&2; exit 2; }
command -v inotifywait >/dev/null || { echo "watch-overhead: needs inotifywait (apt-get install inotify-tools)" >&2; exit 2; }
work=$(mktemp -d "$parent/vigil-overhead-XXXXXX")
watch_pid=
trap 'if [ -n "$watch_pid" ]; then kill $watch_pid 2>/dev/null || true; fi; rm -rf "$work"' EXIT
go build -o "$work/vigil" ./cmd/vigil
go build -o "$work/fanotify-floor" ./bench/fanotify-floor
tar -C /usr/share -cf "$work/man.tar" man
mkdir -p "$work/tree"
"$work/vigil" baseline --db "$work/state/b.vgl" "$work/tree" >/dev/null
hz=$(getconf CLK_TCK)

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }

start() { # start variant $1 in the background, wait until it watches
	case $1 in
	none) watch_pid= ; return ;;
	inotifywait)
		nice -n "$prio" inotifywait -m -r -q -e modify,close_write,create,delete,move,attrib "$work/tree" >/dev/null 2>"$work/watch.err" &
		watch_pid=$!
		sleep 1 # it prints "Watches established" only without -q
		;;
	fanotify-floor)
		nice -n "$prio" "$work/fanotify-floor" "$work/tree" >"$work/watch.out" 2>"$work/watch.err" &
		watch_pid=$!
		until grep -q ready "$work/watch.out" 2>/dev/null; do sleep 0.05; done
		;;
	vigil*)
		local args=()
		[ "$1" = vigil-syscall ] && args=(--who-mode=syscall)
		[ "$1" = vigil-nowho ] && args=(--no-who)
		nice -n "$prio" "$work/vigil" watch --db "$work/state/b.vgl" --json "${args[@]}" >"$work/watch.out" 2>"$work/watch.err" &
		watch_pid=$!
		until grep -q watcher-started "$work/watch.out" 2>/dev/null; do sleep 0.1; done
		;;
	esac
}

stop() { # wait for the watcher to go quiet, stop it; print its CPU seconds
	[ -n "$watch_pid" ] || { echo 0; return; }
	local c0=$1 prev=-1 now
	# Quiet: no CPU used over half a second (it reports the burst first).
	while now=$(cpu $watch_pid); [ "$now" != "$prev" ]; do prev=$now; sleep 0.5; done
	# Background jobs of a script ignore SIGINT; vigil re-enables it (and
	# stops cleanly on it), inotifywait needs TERM.
	kill -"$2" $watch_pid
	wait $watch_pid 2>/dev/null || true
	watch_pid=
	echo "scale=2; ($now - $c0) / $hz" | bc
}

declare -A wall tcpu wcpu
for i in $(seq 1 "$runs"); do
	for v in $variants; do
		start "$v"
		c0=0; [ -n "$watch_pid" ] && c0=$(cpu $watch_pid)
		/usr/bin/time -f "%e %U %S" -o "$work/time" tar -C "$work/tree" -xf "$work/man.tar"
		read -r e u s <"$work/time"
		sig=INT; [ "$v" = vigil ] || [ "${v#vigil-}" != "$v" ] || sig=TERM
		wcpu[$v]+="$(stop "$c0" $sig) "
		wall[$v]+="$e "
		tcpu[$v]+="$(echo "$u + $s" | bc) "
		rm -rf "$work/tree/man"
	done
done

# Idle CPU: a running watch with nothing happening for 10 s.
"$work/vigil" watch --db "$work/state/b.vgl" --json >/dev/null 2>&1 &
watch_pid=$!
sleep 3
t0=$(cpu $watch_pid)
sleep 10
t1=$(cpu $watch_pid)
kill -INT $watch_pid; wait $watch_pid || true
watch_pid=

{
	for v in $variants; do echo "$v|${wall[$v]}|${tcpu[$v]}|${wcpu[$v]}"; done
} | python3 -c '
import statistics, sys
hz, t0, t1, runs, prio = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [l.rstrip("\n").split("|") for l in sys.stdin]
med = lambda s: statistics.median(float(x) for x in s.split())
base = {}
print(f"untar of /usr/share/man into a watched tmpfs tree, {runs} interleaved runs, medians; watchers at nice {prio}")
print("%-15s %7s %8s %9s %8s %13s" % ("variant", "wall s", "vs none", "tar CPU s", "vs none", "watcher CPU s"))
for v, w, c, wc in rows:
    mw, mc, mwc = med(w), med(c), med(wc)
    if v == "none":
        base = (mw, mc)
    rw = f"{100*(mw/base[0]-1):+.0f}%" if base else ""
    rc = f"{100*(mc/base[1]-1):+.0f}%" if base else ""
    print(f"{v:<15} {mw:>7.2f} {rw:>8} {mc:>9.2f} {rc:>8} {mwc:>13.2f}")
    print("%-15s runs: wall %s; tar CPU %s" % ("", w.strip(), c.strip()))
print(f"idle vigil watch CPU over 10 s: {(t1-t0)/hz:.2f} s ({100*(t1-t0)/hz/10:.2f}% of one core)")
' "$hz" "$t0" "$t1" "$runs" "$prio"
