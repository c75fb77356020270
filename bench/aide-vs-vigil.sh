#!/usr/bin/env bash
# Runs Vigil and AIDE side by side on the same tree with a warm page cache
# and prints medians and ratios. Every tool runs in the same session,
# interleaved, so the ratios hold even when the machine's speed drifts.
#
#   bench/aide-vs-vigil.sh [-n RUNS] [-t TREE] [-w WORKDIR]
#     TREE: "usr" (default: /usr as installed), "gen1m" (1,000,000 generated
#     small files), or any absolute directory.
#
# Needs root (AIDE reads everything), Debian packages aide, time, openssl
# (installed if missing). Results go to stdout and WORKDIR/results.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
tree=usr
work=/var/tmp/vigil-bench
while getopts "n:t:w:" o; do
	case $o in
	n) runs=$OPTARG ;;
	t) tree=$OPTARG ;;
	w) work=$OPTARG ;;
	*) echo "usage: $0 [-n RUNS] [-t usr|gen1m|DIR] [-w WORKDIR]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (AIDE and Vigil must read every file)" >&2; exit 2; }

need=()
command -v aide >/dev/null || need+=(aide)
[ -x /usr/bin/time ] || need+=(time)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

mkdir -p "$work"
case $tree in
usr) dir=/usr ;;
gen1m)
	dir=$work/gen1m
	if [ ! -f "$dir/.complete" ]; then
		echo "bench: generating 1,000,000 files under $dir" >&2
		go run ./bench/gentree -root "$dir" -files 1000000 -fanout 100
		touch "$dir/.complete"
	fi
	;;
/*) dir=$tree ;;
*) echo "bench: unknown tree $tree" >&2; exit 2 ;;
esac

go build -o "$work/vigil" ./cmd/vigil
vigil=$work/vigil

cat >"$work/aide.conf" <<CONF
database_in=file:$work/aide.db.gz
database_out=file:$work/aide.db.gz
gzip_dbout=yes
num_workers=2
report_url=file:/dev/null
VigilSame = p+ftype+i+n+u+g+s+m+c+acl+xattrs+sha256
$dir VigilSame
CONF

results=$work/results.tsv
: >"$results"

# measure NAME CMD...: runs CMD once with a warm cache, records seconds and
# peak RSS (KiB). Exit statuses 0 and 1 both mean "ran" for the checkers.
measure() {
	local name=$1
	shift
	/usr/bin/time -f '%e %M' -o "$work/time.out" "$@" >/dev/null 2>"$work/$name.stderr" || true
	local out
	out=$(tail -n1 "$work/time.out")
	printf '%s\t%s\t%s\n' "$name" "${out% *}" "${out#* }" >>"$results"
}

echo "bench: warming the page cache on $dir" >&2
find "$dir" -xdev -type f -print0 | xargs -0 -P2 -n 500 cat >/dev/null 2>&1 || true

entries=$(find "$dir" -xdev | wc -l)
bytes=$(du -sxb "$dir" | cut -f1)

for i in $(seq 1 "$runs"); do
	echo "bench: run $i/$runs" >&2
	measure stat_limit sh -c "find '$dir' -xdev -printf '%i %n %m %U %G %s %T@ %C@\n' >/dev/null"
	measure hash_limit sh -c "find '$dir' -xdev -type f -print0 | xargs -0 -P2 -n 500 openssl dgst -sha256 >/dev/null"
	rm -f "$work/vigil.vgl"
	measure vigil_baseline "$vigil" baseline --db "$work/vigil.vgl" "$dir"
	measure vigil_check "$vigil" check --db "$work/vigil.vgl"
	measure vigil_check_full "$vigil" check --db "$work/vigil.vgl" --full
	rm -f "$work/aide.db.gz"
	measure aide_init aide --config "$work/aide.conf" --init
	measure aide_check aide --config "$work/aide.conf" --check
done

vigil_size=$(stat -c %s "$work/vigil.vgl")
aide_size=$(stat -c %s "$work/aide.db.gz")

python3 - "$results" "$entries" "$bytes" "$vigil_size" "$aide_size" "$dir" <<'PY'
import statistics, sys
path, entries, nbytes, vsize, asize, tree = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
t, rss = {}, {}
for line in open(path):
    name, secs, kib = line.rstrip("\n").split("\t")
    t.setdefault(name, []).append(float(secs))
    rss.setdefault(name, []).append(int(kib))
med = {k: statistics.median(v) for k, v in t.items()}
mrss = {k: max(v) for k, v in rss.items()}
print(f"tree {tree}: {entries} entries, {nbytes/1e9:.2f} GB; {len(t['stat_limit'])} runs; medians")
print(f"{'command':18} {'median s':>9} {'peak RSS MB':>12}")
for k in ["stat_limit", "hash_limit", "vigil_baseline", "vigil_check", "vigil_check_full", "aide_init", "aide_check"]:
    print(f"{k:18} {med[k]:9.2f} {mrss[k]/1024:12.1f}")
r = lambda a, b: med[a] / med[b]
print()
print(f"vigil baseline / hash limit   {r('vigil_baseline','hash_limit'):.2f}x   (target <= 1.3x)")
print(f"vigil check --full / hash lim {r('vigil_check_full','hash_limit'):.2f}x   (target <= 1.3x)")
print(f"vigil check / stat limit      {r('vigil_check','stat_limit'):.2f}x   (target <= 2x)")
print(f"aide --init / vigil baseline  {r('aide_init','vigil_baseline'):.1f}x faster")
print(f"aide --check / vigil check    {r('aide_check','vigil_check'):.1f}x faster")
print(f"aide --check / vigil --full   {r('aide_check','vigil_check_full'):.1f}x faster")
print(f"baseline size: vigil {vsize/1e6:.1f} MB, aide gzip {asize/1e6:.1f} MB, ratio {vsize/asize:.2f}x (target <= 3x)")
PY
