#!/usr/bin/env bash
# Host overhead of `vigil watch`: the time of a write-heavy workload (untar
# of /usr/share/man, about 24k entries) into a watched tree, with and
# without vigil watch running (with who-data and evidence), interleaved,
# medians of N runs. Also samples the watcher's CPU while idle.
#
#   bench/watch-overhead.sh [-n RUNS] [-d DIR] [-a "EXTRA WATCH ARGS"]
#
# -a passes flags to vigil watch, e.g. -a --no-who or -a --no-evidence, to
# see what each part costs. -p runs the watcher at that nice value (as the
# shipped systemd unit does with Nice=); 0 runs it at the workload's
# priority.
#
# Needs root (fanotify, audit). DIR defaults to /dev/shm (tmpfs: ext4 here
# varies several-fold in create speed on its own).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
parent=/dev/shm
extra=""
prio=0
while getopts "n:d:a:p:" o; do
	case $o in
	n) runs=$OPTARG ;;
	d) parent=$OPTARG ;;
	a) extra=$OPTARG ;;
	p) prio=$OPTARG ;;
	*) echo "usage: $0 [-n RUNS] [-d DIR] [-a WATCH-ARGS]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "watch-overhead: needs root" >&2; exit 2; }
work=$(mktemp -d "$parent/vigil-overhead-XXXXXX")
trap 'kill $watch_pid 2>/dev/null || true; rm -rf "$work"' EXIT
watch_pid=
go build -o "$work/vigil" ./cmd/vigil
tar -C /usr/share -cf "$work/man.tar" man
mkdir -p "$work/tree"
"$work/vigil" baseline --db "$work/state/b.vgl" "$work/tree" >/dev/null

untar() { # one run: extract, then remove, timing the extraction only
	local t0 t1
	t0=$(date +%s.%N)
	tar -C "$work/tree" -xf "$work/man.tar"
	t1=$(date +%s.%N)
	rm -rf "$work/tree/man"
	echo "$t1 - $t0" | bc
}

without=() with=()
for i in $(seq 1 "$runs"); do
	without+=("$(untar)")
	# shellcheck disable=SC2086
	nice -n "$prio" "$work/vigil" watch --db "$work/state/b.vgl" --json $extra >"$work/watch.out" 2>"$work/watch.err" &
	watch_pid=$!
	until grep -q watcher-started "$work/watch.out" 2>/dev/null; do sleep 0.1; done
	with+=("$(untar)")
	# Let it finish reporting the burst before stopping it.
	sleep 3
	kill -INT $watch_pid; wait $watch_pid || true
	watch_pid=
done

# Idle CPU: a running watch with nothing happening for 10 s.
"$work/vigil" watch --db "$work/state/b.vgl" --json >/dev/null 2>&1 &
watch_pid=$!
sleep 3
t0=$(awk '{print $14+$15}' /proc/$watch_pid/stat)
sleep 10
t1=$(awk '{print $14+$15}' /proc/$watch_pid/stat)
kill -INT $watch_pid; wait $watch_pid || true
watch_pid=

python3 - "$(getconf CLK_TCK)" "$t0" "$t1" "${without[*]}" "${with[*]}" "$extra" "$prio" <<'PY'
import statistics, sys
hz, t0, t1 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
wo = [float(x) for x in sys.argv[4].split()]
w = [float(x) for x in sys.argv[5].split()]
mwo, mw = statistics.median(wo), statistics.median(w)
print(f"untar of /usr/share/man, {len(wo)} runs each, medians (watch flags: {sys.argv[6] or 'none'}; watcher nice {sys.argv[7]}):")
print(f"  without watch  {mwo:.2f} s   (runs: {' '.join(f'{x:.2f}' for x in wo)})")
print(f"  with watch     {mw:.2f} s   (runs: {' '.join(f'{x:.2f}' for x in w)})")
print(f"  overhead       {100*(mw/mwo-1):+.1f}%  (target under 10%)")
print(f"idle watcher CPU over 10 s: {(t1-t0)/hz:.2f} s ({100*(t1-t0)/hz/10:.2f}% of one core)")
PY
