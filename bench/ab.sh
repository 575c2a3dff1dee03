#!/bin/sh
# ab.sh OLD_BUILD NEW_BUILD - the hot-path benchmarks of two goro builds side
# by side (e.g. before and after a change: `git worktree add /tmp/old HEAD~1`,
# build it, then `bench/ab.sh /tmp/old/build build`). Runs old and new
# alternately, BENCH_RUNS times each (default 5), and prints the medians and
# new/old ratios (for ns/op rows, above 1 is slower; for the buffered row,
# a rate, below 1 is slower).
set -eu
[ $# -eq 2 ] || { echo "usage: bench/ab.sh OLD_BUILD NEW_BUILD" >&2; exit 2; }
old=$1/bench/goro-bench new=$2/bench/goro-bench
runs=${BENCH_RUNS:-5}
for b in $old $new; do [ -x "$b" ] || { echo "ab.sh: $b not built" >&2; exit 1; }; done
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
for name in spawn pingpong buffered select; do
    for p in 1 2; do
        o="" n=""
        i=0
        while [ $i -lt "$runs" ]; do
            o="$o $(timeout 60 "$old" $name --procs $p 2>/dev/null | awk '/^BENCH/{v=$3} END{print v}')"
            n="$n $(timeout 60 "$new" $name --procs $p 2>/dev/null | awk '/^BENCH/{v=$3} END{print v}')"
            i=$((i + 1))
        done
        mo=$(echo $o | median) mn=$(echo $n | median)
        printf '%-9s procs=%d  old %12s  new %12s  new/old %s   old:[%s ] new:[%s ]\n' "$name" "$p" \
            "$mo" "$mn" "$(echo "$mn $mo" | awk '{printf "%.3f", $1/$2}')" "$o" "$n"
    done
done
