#!/bin/bash
# End-to-end burst: 200,000 creates into a watched tmpfs root under vigil watch;
# counts the paths reported and checks a following vigil check. Needs root and
# a vigil binary at /tmp/vigil (go build -o /tmp/vigil ./cmd/vigil).
set -u
W=$(mktemp -d /dev/shm/burst-XXXX); mkdir -p $W/tree
/tmp/vigil baseline --db $W/state/b.vgl $W/tree > /dev/null
/tmp/vigil watch --db $W/state/b.vgl --json > $W/out 2> $W/err &
p=$!
for i in $(seq 1 100); do grep -q watcher-started $W/out && break; sleep 0.2; done
t0=$(date +%s.%N)
python3 -c "
import os
d='$W/tree'
for i in range(200000):
    os.close(os.open(f'{d}/f{i}', os.O_CREAT|os.O_WRONLY, 0o644))
"
t1=$(date +%s.%N); echo "creates took $(echo "$t1-$t0"|bc) s"
prev=-1
for i in $(seq 1 60); do sleep 5; n=$(grep -c '"type":"added"' $W/out); [ "$n" = "$prev" ] && break; prev=$n; done
echo "drained $(echo "$(date +%s.%N)-$t1"|bc) s after the creates"
grep -o '"kind":"[a-z-]*"' $W/out | sort | uniq -c
kill -INT $p; wait $p
python3 - $W/out <<'PY'
import json,sys
s=set(); src={}
for l in open(sys.argv[1]):
    d=json.loads(l)
    if d.get('type')=='added':
        s.add(d['path']); src[d['source']]=src.get(d['source'],0)+1
print('unique paths reported added', len(s), 'by source', src)
PY
/tmp/vigil check --db $W/state/b.vgl --no-evidence | tail -1
rm -rf $W
