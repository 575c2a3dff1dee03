#!/bin/sh
# demo.sh - `make demo`: the goroutine-leak story, reproduced, found and fixed.
#
#   1. leaky-service --mode leak under bounded load, one line per second
#      (req/s, resident memory, goroutines, parked, the watchdog);
#   2. what an engineer looks at, each with the command to do it by hand:
#      the watchdog's report, the heap profile, goroutineleak, goroutine?debug=1;
#   3. the same load on --mode fixed;
#   4. a side-by-side summary, and demo-out/ with the profiles, the time
#      series (timeseries.csv) and memory.svg.
#
# Everything listens and connects on 127.0.0.1 only; every process started
# here is stopped on exit, also on Ctrl-C. The leak run stops early when the
# service passes DEMO_RSS_CAP bytes of resident memory.
#
# Knobs (environment): DEMO_SECONDS (20) per run, DEMO_RATE (2000 req/s),
# DEMO_CONNS (8), DEMO_RSS_CAP (1 GiB), DEMO_OUT (demo-out), DEMO_LOAD
# (auto: wrk if installed, else goro's loadgen; or "wrk" / "loadgen"),
# BUILD (build). DEMO_QUIET=1 prints only the summary (used by the test).
set -eu
cd "$(dirname "$0")/.."

B=${BUILD:-build}
OUT=${DEMO_OUT:-demo-out}
SECS=${DEMO_SECONDS:-20}
RATE=${DEMO_RATE:-2000}
CONNS=${DEMO_CONNS:-8}
CAP=${DEMO_RSS_CAP:-1073741824}
LOAD=${DEMO_LOAD:-auto}
QUIET=${DEMO_QUIET:-0}

if [ -t 1 ] && [ "$QUIET" = 0 ]; then
    BOLD=$(printf '\033[1m') DIM=$(printf '\033[2m') RED=$(printf '\033[31m') GREEN=$(printf '\033[32m') RST=$(printf '\033[0m')
else
    BOLD='' DIM='' RED='' GREEN='' RST=''
fi
say() { [ "$QUIET" = 1 ] || printf '%s\n' "$*"; }
head1() { say ""; say "${BOLD}== $* ==${RST}"; }
cmd() { say "${DIM}\$ $*${RST}"; }
show() { if [ "$QUIET" = 1 ]; then cat >/dev/null; else cat; fi; }

# ---- build --------------------------------------------------------------------
head1 "building goro, the leaky service and the load generator"
if [ ! -f "$B/build.ninja" ]; then
    cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$B" --target leaky-service loadgen | tail -n 1 | show
SVC="$B/examples/leaky-service"
GEN="$B/examples/loadgen"

if [ "$LOAD" = auto ]; then
    if command -v wrk >/dev/null 2>&1; then LOAD=wrk; else LOAD=loadgen; fi
fi
case "$LOAD" in wrk | loadgen) ;; *) echo "demo: DEMO_LOAD must be auto, wrk or loadgen" >&2; exit 2 ;; esac

rm -rf "$OUT"
mkdir -p "$OUT"
echo "mode,t_seconds,req_per_s,rss_bytes,goroutines,parked,suspects" >"$OUT/timeseries.csv"

# ---- processes and cleanup ------------------------------------------------------
SVC_PID='' WRK_PID=''
stop_pid() { # pid: TERM, wait up to 3 s, then KILL
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    stop_pid "$WRK_PID"; WRK_PID=''
    stop_pid "$SVC_PID"; SVC_PID=''
}
trap 'cleanup' EXIT
trap 'cleanup; echo; echo "demo: interrupted" >&2; exit 130' INT TERM

ADDR=''
start_service() { # mode
    "$SVC" --listen 127.0.0.1:0 --mode "$1" >"$OUT/service-$1.out" 2>"$OUT/service-$1.log" &
    SVC_PID=$!
    i=0
    ADDR=''
    while [ $i -lt 100 ]; do
        # The background job may not have created the file yet: under set -e
        # a failing sed in this assignment would end the script silently.
        ADDR=$(sed -n 's|.*listening on http://||p' "$OUT/service-$1.out" 2>/dev/null || true)
        [ -n "$ADDR" ] && break
        kill -0 "$SVC_PID" 2>/dev/null || break
        sleep 0.05
        i=$((i + 1))
    done
    if [ -z "$ADDR" ]; then
        echo "demo: leaky-service did not start:" >&2
        cat "$OUT/service-$1.log" >&2
        exit 1
    fi
}

# One run: load for SECS seconds, the monitor printing a line per second.
# Leaves the monitor's output in $OUT/run-MODE.txt.
run_load() { # mode
    if [ "$LOAD" = wrk ]; then
        # wrk has no rate option; its Lua delay() paces each connection.
        delay_ms=$(awk -v c="$CONNS" -v r="$RATE" 'BEGIN { printf "%d", c * 1000 / r }')
        cmd "wrk -t2 -c$CONNS -d${SECS}s -s scripts/wrk-rate.lua http://$ADDR/work   (about $RATE req/s)"
        WRK_DELAY_MS=$delay_ms wrk -t2 -c"$CONNS" -d"${SECS}s" -s scripts/wrk-rate.lua \
            "http://$ADDR/work" >"$OUT/wrk-$1.txt" 2>&1 &
        WRK_PID=$!
        rate_arg=0
    else
        cmd "$GEN $ADDR --path /work --conns $CONNS --rate $RATE --duration $SECS   (goro's own load generator)"
        rate_arg=$RATE
    fi
    cap_arg=0
    [ "$1" = leak ] && cap_arg=$CAP
    # The monitor runs in the foreground (Ctrl-C reaches it); its lines are
    # shown as they come and kept in run-MODE.txt with the summary line.
    "$GEN" "$ADDR" --path /work --conns "$CONNS" --rate "$rate_arg" --duration "$SECS" \
        --monitor --rss-cap "$cap_arg" --label "$1" --csv "$OUT/timeseries.csv" --pid "$SVC_PID" |
        tee "$OUT/run-$1.txt" | grep --line-buffered -v '^summary\|^suspect ' | show
    grep -q '^summary ' "$OUT/run-$1.txt" || { echo "demo: the monitor failed" >&2; exit 1; }
    if [ -n "$WRK_PID" ]; then stop_pid "$WRK_PID"; WRK_PID=''; fi
}

val() { # file key: the value of key=... on the file's summary line
    sed -n 's/^summary //p' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# ---- 1. the leak --------------------------------------------------------------
say ""
say "${BOLD}The story.${RST} A Go microservice kept restarting out of memory. Its /work handler"
say "called RunAsync(), which started a goroutine that sends its result on an unbuffered"
say "channel - and the handler ignored the channel. Each request left a goroutine blocked"
say "forever on 'ch <- result', holding its stack. examples/leaky-service/service.c is that"
say "service on goro; watch goro find the leak by itself."

head1 "1. leak mode: $SECS s of load at $RATE req/s"
start_service leak
say "service: $SVC --listen 127.0.0.1:0 --mode leak   -> http://$ADDR"
run_load leak
LEAKF="$OUT/run-leak.txt"

# ---- 2. the diagnosis -------------------------------------------------------------
head1 "2. what an engineer looks at (the service is still running)"
SEND_LINE=$(grep -n 'goro_chan_send(ch, &r)' examples/leaky-service/service.c | cut -d: -f1)
SEND_SITE="examples/leaky-service/service.c:$SEND_LINE"

say ""
say "${BOLD}a) the watchdog${RST} (on by default; also printed on the service's stderr and counted in /metrics):"
cmd "curl -s http://$ADDR/debug/goro/leaks"
curl -s "http://$ADDR/debug/goro/leaks" >"$OUT/leaks.txt"
show <"$OUT/leaks.txt"
if grep -q "blocked in chan send at [^ ]*$SEND_SITE" "$OUT/leaks.txt"; then
    say "${GREEN}-> the report names run_async and the blocked send, $SEND_SITE${RST}"
    NAMED=yes
else
    say "${RED}-> the report does not name $SEND_SITE${RST}"
    NAMED=no
fi

say ""
say "${BOLD}b) the heap profile${RST}: goroutine stacks count, attributed to where the goroutines were created"
cmd "curl -s -o heap.pb.gz http://$ADDR/debug/pprof/heap"
curl -s -o "$OUT/heap.pb.gz" "http://$ADDR/debug/pprof/heap"
if command -v go >/dev/null 2>&1; then
    cmd "go tool pprof -top -nodecount=8 heap.pb.gz"
    go tool pprof -top -nodecount=8 "$OUT/heap.pb.gz" 2>&1 | show
else
    say "${DIM}(go is not installed: 'go tool pprof -top heap.pb.gz' would read it; the text form follows)${RST}"
fi
cmd "curl -s 'http://$ADDR/debug/pprof/heap?debug=1' | sed -n '/^# goroutine memory/,/^\$/p'"
curl -s "http://$ADDR/debug/pprof/heap?debug=1" >"$OUT/heap.txt"
sed -n '/^# goroutine memory/,/^$/p' "$OUT/heap.txt" | head -n 9 | show

say ""
say "${BOLD}c) the goroutineleak profile${RST}: a reachability check (stops the world briefly) - no live"
say "   memory can reach these channels, so nothing can ever receive from them"
cmd "curl -s 'http://$ADDR/debug/pprof/goroutineleak?debug=1' | head -12"
curl -s "http://$ADDR/debug/pprof/goroutineleak?debug=1" >"$OUT/goroutineleak.txt"
curl -s -o "$OUT/goroutineleak.pb.gz" "http://$ADDR/debug/pprof/goroutineleak"
head -n 12 "$OUT/goroutineleak.txt" | show
LEAKED=$(sed -n 's/^goroutineleak profile: total \([0-9]*\).*/\1/p' "$OUT/goroutineleak.txt")

say ""
say "${BOLD}d) the goroutine profile${RST}, grouped by stack (debug=1)"
cmd "curl -s 'http://$ADDR/debug/pprof/goroutine?debug=1' | head -12"
curl -s "http://$ADDR/debug/pprof/goroutine?debug=1" >"$OUT/goroutine.txt"
curl -s -o "$OUT/goroutine.pb.gz" "http://$ADDR/debug/pprof/goroutine"
head -n 12 "$OUT/goroutine.txt" | show
stop_pid "$SVC_PID"
SVC_PID=''

# ---- 3. the fix --------------------------------------------------------------------
head1 "3. fixed mode: the same load on --mode fixed"
start_service fixed
say "service: $SVC --listen 127.0.0.1:0 --mode fixed   -> http://$ADDR"
run_load fixed
FIXF="$OUT/run-fixed.txt"
curl -s "http://$ADDR/debug/goro/leaks" >"$OUT/leaks-fixed.txt"
cmd "curl -s http://$ADDR/debug/goro/leaks"
show <"$OUT/leaks-fixed.txt"
stop_pid "$SVC_PID"
SVC_PID=''

# ---- 4. summary and chart -------------------------------------------------------------
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1048576 }'; }
mbs() { awk -v b="$1" 'BEGIN { printf "%+.2f MB/s", b / 1048576 }'; }
det() { awk -v d="$1" 'BEGIN { if (d < 0) print "never"; else printf "%.1f s after load start", d }'; }

L_RPS=$(val "$LEAKF" rps) F_RPS=$(val "$FIXF" rps)
L_GROW=$(val "$LEAKF" rss_growth_per_sec) F_GROW=$(val "$FIXF" rss_growth_per_sec)
L_G=$(val "$LEAKF" goroutines_end) F_G=$(val "$FIXF" goroutines_end)
L_DET=$(val "$LEAKF" detect_seconds) F_DET=$(val "$FIXF" detect_seconds)
L_START=$(val "$LEAKF" rss_start) L_END=$(val "$LEAKF" rss_end)
F_START=$(val "$FIXF" rss_start) F_END=$(val "$FIXF" rss_end)
L_STOP=$(val "$LEAKF" stopped)

head1 "4. summary"
{
    printf '%-26s %22s %22s\n' "" "leak" "fixed"
    printf '%-26s %22s %22s\n' "requests/s" "$L_RPS" "$F_RPS"
    printf '%-26s %22s %22s\n' "resident memory" "$(mb "$L_START") -> $(mb "$L_END")" "$(mb "$F_START") -> $(mb "$F_END")"
    printf '%-26s %22s %22s\n' "memory growth" "$(mbs "$L_GROW")" "$(mbs "$F_GROW")"
    printf '%-26s %22s %22s\n' "goroutines at the end" "$L_G" "$F_G"
    printf '%-26s %22s %22s\n' "leak reported" "$(det "$L_DET")" "$(det "$F_DET")"
    printf '%-26s %22s %22s\n' "goroutineleak (scan)" "${LEAKED:-?} leaked" "-"
    [ "$L_STOP" = rss-cap ] && printf '(the leak run was stopped early at the %s memory cap)\n' "$(mb "$CAP")"
} | tee "$OUT/summary.txt"

# memory.svg: resident memory over time, both modes, the watchdog's moment marked.
awk -F, -v det="$L_DET" -v rate="$RATE" '
NR == 1 { next }
{ n[$1]++; t[$1, n[$1]] = $2; m[$1, n[$1]] = $4 / 1048576; if ($2 > tmax) tmax = $2; if ($4 / 1048576 > mmax) mmax = $4 / 1048576 }
END {
    W = 820; H = 440; L = 70; R = 30; T = 50; Bm = 50
    pw = W - L - R; ph = H - T - Bm
    if (tmax < 1) tmax = 1
    step = 1; while (mmax / step > 8) step = (step == 1 ? 2 : (step == 2 ? 5 : step * 2))
    if (mmax < 8) { step = 1; ymax = 8 } else ymax = (int(mmax / step) + 1) * step
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"24\" font-size=\"15\" font-weight=\"bold\">leaky-service: resident memory under %s req/s</text>\n", L, rate
    for (y = 0; y <= ymax + 1e-9; y += step) {
        py = T + ph - y / ymax * ph
        printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, py, L + pw, py
        printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g MB</text>\n", L - 6, py + 4, y
    }
    xs = tmax > 30 ? 10 : 5
    for (x = 0; x <= tmax + 1e-9; x += xs) {
        px = L + x / tmax * pw
        printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eee\"/>\n", px, T, px, T + ph
        printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%gs</text>\n", px, T + ph + 18, x
    }
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">seconds since load start</text>\n", L + pw / 2, H - 8
    split("leak fixed", modes, " "); col["leak"] = "#d62728"; col["fixed"] = "#2ca02c"
    for (k = 1; k <= 2; k++) {
        md = modes[k]; if (!n[md]) continue
        pts = ""
        for (i = 1; i <= n[md]; i++) pts = pts sprintf(" %.1f,%.1f", L + t[md, i] / tmax * pw, T + ph - m[md, i] / ymax * ph)
        printf "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" points=\"%s\"/>\n", col[md], pts
        printf "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"%s\"/>", L + 10, T + 8 + (k - 1) * 18, col[md]
        printf "<text x=\"%d\" y=\"%d\">--mode %s</text>\n", L + 30, T + 13 + (k - 1) * 18, md
    }
    if (det >= 0) {
        px = L + det / tmax * pw
        printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#555\" stroke-dasharray=\"5,4\"/>\n", px, T, px, T + ph
        printf "<text x=\"%.1f\" y=\"%d\" fill=\"#333\">watchdog: leak reported at %.1fs</text>\n", px + 6, T + 50, det
    }
    printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n</svg>\n", L, T, pw, ph
}' "$OUT/timeseries.csv" >"$OUT/memory.svg"

say ""
say "demo-out/: memory.svg (the chart), timeseries.csv, run-*.txt (per-second lines), summary.txt,"
say "           leaks.txt, heap.pb.gz/heap.txt, goroutineleak.pb.gz/.txt, goroutine.pb.gz/.txt, service-*.log"

# The demo's own claims, checked (tests/test_demo.sh runs a shortened demo
# and relies on these).
ok=yes
fail() { echo "demo: FAIL: $*" >&2; ok=no; }
[ "$NAMED" = yes ] || fail "the watchdog did not name $SEND_SITE"
awk -v d="$L_DET" -v m="${DEMO_MAX_DETECT:-10}" 'BEGIN { exit !(d >= 0 && d <= m) }' ||
    fail "leak mode: no leak reported within ${DEMO_MAX_DETECT:-10} s of load start (detect_seconds=$L_DET)"
awk -v d="$F_DET" 'BEGIN { exit !(d < 0) }' || fail "fixed mode: a leak was reported"
grep -q "^goro leak watchdog: 0 suspects" "$OUT/leaks-fixed.txt" || fail "fixed mode: /debug/goro/leaks lists suspects"
awk -v g="$L_G" -v r="$(val "$LEAKF" requests)" 'BEGIN { exit !(g >= 0.9 * r) }' ||
    fail "leak mode: $L_G goroutines at the end for $(val "$LEAKF" requests) requests"
awk -v g="$F_G" 'BEGIN { exit !(g >= 0 && g < 100) }' || fail "fixed mode: $F_G goroutines at the end"
if [ "${DEMO_CHECK_MEMORY:-1}" = 1 ]; then # sanitizer builds hold freed memory back
    awk -v a="$L_START" -v b="$L_END" -v g="$L_G" 'BEGIN { exit !(b - a > 2048 * g) }' ||
        fail "leak mode: memory did not grow with the goroutines"
    awk -v a="$F_START" -v b="$F_END" 'BEGIN { exit !(b - a < 8 * 1048576) }' ||
        fail "fixed mode: memory grew by more than 8 MB"
fi
[ "$ok" = yes ] || exit 1
echo "demo: ok"
