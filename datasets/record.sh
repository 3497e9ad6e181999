#!/usr/bin/env bash
# Re-records the dirty-page traces in datasets/ from real programs under real load.
#
#   datasets/record.sh [BIN] [NAME]
#
# BIN is the migpilot binary (default .build/release/migpilot); NAME records one trace only:
# redis-benchmark, pgbench, memcached, numpy-stencil, sqlite-writes or jvm-gc.
#
# Runs as root (it installs the servers and load generators with apt-get and runs PostgreSQL
# as the postgres user). Every server listens on 127.0.0.1 only, on a non-default port, in a
# private temporary directory; every load is bounded in time; everything this script started
# is stopped when it ends, also on failure or Ctrl-C. A trace replaces the one in datasets/
# only when it was recorded whole and passes the checks in check_trace. Takes ~10 minutes.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BIN=${1:-.build/release/migpilot}
ONLY=${2:-}
ALL=(redis-benchmark pgbench memcached numpy-stencil sqlite-writes jvm-gc)

DURATION=65s           # recorded time per trace (the bar is >= 60 s)
RUN_SECONDS=220        # upper bound on each load: warm-up + up to three recordings; stopped once recorded
MIN_RSS=$((256 << 20)) # the recorded process must be at least this resident

die() { echo "record.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

[[ -x $BIN ]] || die "no migpilot binary at $BIN (build it: swift build -c release)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
if [[ -n $ONLY ]]; then
  [[ " ${ALL[*]} " == *" $ONLY "* ]] || die "unknown trace '$ONLY' (one of: ${ALL[*]})"
fi
[[ $(id -u) -eq 0 ]] || die "run as root: it installs packages and runs PostgreSQL as the postgres user"

# ---------------------------------------------------------------------------------------------
# What every trace needs: packages (installed without letting Debian start its own services)

PACKAGES=(redis-server redis-tools postgresql postgresql-contrib memcached sqlite3 openjdk-17-jdk-headless python3)
install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    # Debian starts redis, memcached and a PostgreSQL cluster on install unless policy-rc.d
    # says no; this script runs its own servers on loopback only, so it says no.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    local ok=1
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || ok=0
    if ((made_policy)); then rm -f "$policy"; fi
    ((ok)) || die "apt-get install failed"
  fi
  if ! python3 -c 'import numpy' 2>/dev/null; then
    log "installing numpy (pip)"
    python3 -m pip install -q numpy >&2 || apt-get install -y -qq --no-install-recommends python3-numpy >&2
  fi
}

# ---------------------------------------------------------------------------------------------
# Bookkeeping: a private work directory, the processes started, and cleanup on any exit

WORK=$(mktemp -d /tmp/migpilot-datasets.XXXXXX)
chmod 755 "$WORK"
STARTED=()   # pids of everything started in the background
PGDATA=""    # set while a private PostgreSQL cluster exists

stop_pid() {  # stop one process we started: TERM, then KILL after 10 s
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_postgres() {
  [[ -n $PGDATA && -f $PGDATA/postmaster.pid ]] && su postgres -c "$PGBIN/pg_ctl -D $PGDATA -m immediate -w stop" >/dev/null 2>&1 || true
  PGDATA=""
}
stop_all() {
  local pid
  stop_postgres
  for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
  STARTED=()
}
cleanup() {
  local rc=$?
  stop_all
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_line() {  # file pattern seconds: wait until a line in file matches
  local file=$1 pattern=$2 i
  for i in $(seq $(($3 * 10))); do
    grep -q "$pattern" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  die "timed out waiting for '$pattern' in $file: $(tail -5 "$file" 2>/dev/null)"
}
rss_bytes() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }

COMMON_NOTES=(
  --note "machine=$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo) GiB RAM, $(uname -srm)"
  --note "recorded_with=datasets/record.sh (migpilot trace record run under nice -n -10)"
  --note "migpilot_commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
)

# record NAME PID "INTERVALS" NOTE...: records PID for DURATION at the first interval in
# INTERVALS the recorder can keep, checks the trace and puts it into datasets/.
record() {
  local name=$1 pid=$2 intervals=$3 iv out="$WORK/$name.trace" err="$WORK/$name.record.err"
  shift 3
  local notes=() n
  for n in "$@"; do notes+=(--note "$n"); done
  (($(rss_bytes "$pid") >= MIN_RSS)) || die "$name: pid $pid is only $(($(rss_bytes "$pid") >> 20)) MiB resident"
  for iv in $intervals; do
    log "$name: recording pid $pid ($(($(rss_bytes "$pid") >> 20)) MiB resident) every $iv for $DURATION"
    # In the background, so that Ctrl-C or TERM ends it (and the cleanup) at once.
    nice -n -10 "$BIN" trace record --pid "$pid" --interval "$iv" --duration "$DURATION" \
      "${COMMON_NOTES[@]}" --note "recorded_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${notes[@]}" -o "$out" 2> "$err" &
    local rpid=$!
    STARTED+=("$rpid")
    if wait "$rpid"; then
      cat "$err" >&2
      check_trace "$name" "$out"
      # A scan that ends after the next interval should have begun merges two intervals; when
      # more than 1% of them overran (a busy machine), try the next longer interval.
      local overruns intervals_done
      read -r overruns intervals_done < <("$BIN" trace info --json "$out" | python3 -c \
        'import json, sys; t = json.load(sys.stdin); print(t["provenance"]["scan_overruns"], t["intervals"])')
      if ((overruns * 100 > intervals_done)) && [[ $iv != "${intervals##* }" ]]; then
        log "$name: $overruns of $intervals_done scans overran; trying a longer interval"
        continue
      fi
      mv "$out" "$HERE/$name.trace"
      log "$name: wrote datasets/$name.trace ($(stat -c %s "$HERE/$name.trace") bytes)"
      return 0
    fi
    cat "$err" >&2
    grep -q "cannot keep" "$err" || die "$name: the recorder failed"
  done
  die "$name: no interval in '$intervals' could be kept"
}

# The bar every dataset must meet (Tests/EndToEndTests/TraceCommandTests.swift checks it too).
check_trace() {
  local name=$1 file=$2
  "$BIN" trace info --json "$file" | python3 -c '
import json, sys
t = json.load(sys.stdin)
p = t["provenance"]
problems = []
if t["duration_s"] < 60: problems.append("shorter than 60 s: %s" % t["duration_s"])
if t["interval_s"] > 0.5: problems.append("interval above 500 ms: %s" % t["interval_s"])
if int(p.get("target_peak_rss_bytes", 0)) < 256 << 20: problems.append("peak RSS below 256 MiB")
if t["dirty_pages_per_s"]["median"] <= 0: problems.append("no pages written")
if "ended_early" in p: problems.append(p["ended_early"])
if problems: sys.exit(sys.argv[1] + ": " + "; ".join(problems))
' "$name" || die "$name: the trace does not meet the bar"
}

# ---------------------------------------------------------------------------------------------
# The workloads. Each starts its program on loopback, preloads it, starts the load, records,
# and stops what it started.

rec_redis_benchmark() {
  local port=16390 dir="$WORK/redis" cold=1200000 hot=300000 size=160
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port $port --protected-mode yes --save "" --appendonly no \
    --enable-debug-command local --dir "$dir" --logfile "$dir/redis.log" &
  local pid=$!; STARTED+=("$pid")
  for _ in $(seq 100); do redis-cli -h 127.0.0.1 -p $port ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  # Preload: cold keys (never touched again) and the hot keyspace the benchmark uses.
  redis-cli -h 127.0.0.1 -p $port DEBUG POPULATE $cold cold $size >/dev/null
  timeout 120 redis-benchmark -h 127.0.0.1 -p $port -t set -n $((2 * hot)) -r $hot -d $size -c 20 -P 16 -q >/dev/null
  local load="redis-benchmark -h 127.0.0.1 -p $port -t set,get -n 500000 -r $hot -d $size -c 8 -l -q"
  timeout $RUN_SECONDS $load > "$dir/benchmark.log" 2>&1 &
  local lpid=$!; STARTED+=("$lpid")
  sleep 5
  record redis-benchmark "$pid" "300ms 400ms 500ms" \
    "workload=redis-server under redis-benchmark: alternating SET and GET phases (500000 requests each, 8 clients) over a hot keyspace of $hot keys, beside $cold cold keys" \
    "server_command=redis-server --bind 127.0.0.1 --port $port --save '' --appendonly no" \
    "preload=DEBUG POPULATE $cold cold $size; redis-benchmark -t set -n $((2 * hot)) -r $hot -d $size -c 20 -P 16" \
    "load_command=$load" \
    "versions=$(redis-server --version | cut -d' ' -f1-3)"
  stop_pid "$lpid"
  redis-cli -h 127.0.0.1 -p $port shutdown nosave >/dev/null 2>&1 || true
  stop_pid "$pid"
}

PGBIN=""
rec_pgbench() {
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  local port=55432 scale=30 dir="$WORK/pg"
  mkdir -p "$dir/sock"; chown -R postgres "$dir"
  PGDATA=$dir/data
  su postgres -c "$PGBIN/initdb -D $PGDATA -A trust -U postgres -E UTF8 --locale=C --no-sync" > "$dir/initdb.log" 2>&1
  local opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir/sock -c shared_buffers=512MB -c huge_pages=off -c synchronous_commit=off -c max_wal_size=4GB"
  su postgres -c "$PGBIN/pg_ctl -D $PGDATA -l $dir/server.log -w -t 60 -o '$opts' start" >/dev/null
  local pg=(-h 127.0.0.1 -p $port -U postgres)
  "$PGBIN/psql" "${pg[@]}" -qAtc "CREATE EXTENSION pg_prewarm" postgres
  timeout 300 "$PGBIN/pgbench" "${pg[@]}" -i -s $scale -q postgres > "$dir/init.log" 2>&1
  # One client, so one backend makes every transaction's writes. Its first transaction
  # prewarms the tables into shared_buffers: the backend that reads them in has them mapped
  # and present, so the recorder can compare them (the postmaster maps shared_buffers too,
  # but only the pages it touched itself are present in its page table).
  local load="pgbench -h 127.0.0.1 -p $port -n -c 1 -j 1 -T $RUN_SECONDS -D scale=$scale -D warmed=0 -f datasets/workloads/pgbench-tpcb-prewarm.sql -P 10 postgres"
  timeout $((RUN_SECONDS + 30)) "$PGBIN/pgbench" "${pg[@]}" -n -c 1 -j 1 -T $RUN_SECONDS -D scale=$scale -D warmed=0 \
    -f "$HERE/workloads/pgbench-tpcb-prewarm.sql" -P 10 postgres > "$dir/pgbench.log" 2>&1 &
  local lpid=$!; STARTED+=("$lpid")
  local pid="" i
  for i in $(seq 300); do
    pid=$("$PGBIN/psql" "${pg[@]}" -qAtc "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' LIMIT 1" postgres 2>/dev/null || true)
    [[ -n $pid ]] && (($(rss_bytes "$pid") >= 400 << 20)) && break
    sleep 0.2
  done
  [[ -n $pid ]] || die "pgbench: no pgbench backend appeared"
  sleep 5
  record pgbench "$pid" "300ms 400ms 500ms" \
    "workload=PostgreSQL backend serving pgbench (TPC-B-like, 1 client, scale $scale) with the tables prewarmed into shared_buffers=512MB" \
    "server_command=postgres $opts (private initdb cluster)" \
    "preload=pgbench -i -s $scale; first transaction of the load runs pg_prewarm on the pgbench tables and indexes" \
    "load_command=$load" \
    "recorded_process=the pgbench client's backend, which maps shared_buffers and has the prewarmed pages present" \
    "versions=$("$PGBIN/postgres" --version)"
  stop_pid "$lpid"
  stop_postgres
}

rec_memcached() {
  local port=21299 keys=700000 rate=15000 skew=5
  memcached -l 127.0.0.1 -p $port -U 0 -m 1024 -t 2 -c 64 -u root > "$WORK/memcached.log" 2>&1 &
  local pid=$!; STARTED+=("$pid")
  sleep 1
  local load="python3 datasets/workloads/memcache_load.py --port $port --keys $keys --seconds $RUN_SECONDS --ops-per-s $rate --get-share 0.8 --skew $skew"
  timeout $((RUN_SECONDS + 60)) python3 "$HERE/workloads/memcache_load.py" --port $port --keys $keys --seconds $RUN_SECONDS \
    --ops-per-s $rate --get-share 0.8 --skew $skew > "$WORK/memcache_load.out" 2>&1 &
  local lpid=$!; STARTED+=("$lpid")
  wait_for_line "$WORK/memcache_load.out" READY 120
  sleep 5
  record memcached "$pid" "300ms 400ms 500ms" \
    "workload=memcached filled with $keys items (100-900 byte values), then $rate ops/s: 80% meta get, 20% meta set, Zipf-like keys (rank ~ U^$skew)" \
    "server_command=memcached -l 127.0.0.1 -p $port -U 0 -m 1024 -t 2 -c 64" \
    "load_command=$load" \
    "versions=$(memcached -V), $(python3 --version)"
  stop_pid "$lpid"
  stop_pid "$pid"
}

rec_numpy_stencil() {
  local cmd=(python3 "$HERE/workloads/numpy_stencil.py" --rows 4096 --cols 5120 --seconds $RUN_SECONDS)
  timeout $((RUN_SECONDS + 30)) "${cmd[@]}" > "$WORK/numpy.out" 2>&1 &
  local tpid=$!; STARTED+=("$tpid")
  wait_for_line "$WORK/numpy.out" READY 120
  local pid; pid=$(pgrep -P "$tpid" -f numpy_stencil.py | head -1)
  sleep 3
  record numpy-stencil "$pid" "300ms 400ms 500ms" \
    "workload=numpy Jacobi relaxation on two 4096x5120 float64 grids (160 MiB each), sweeping as fast as it can; every sweep rewrites one grid and a scratch grid" \
    "command=python3 datasets/workloads/numpy_stencil.py --rows 4096 --cols 5120 --seconds $RUN_SECONDS" \
    "versions=$(python3 --version), numpy $(python3 -c 'import numpy; print(numpy.__version__)')"
  stop_pid "$tpid"
}

rec_sqlite_writes() {
  local rows=1200000 tps=150
  mkdir -p "$WORK/sqlite"
  local cmd=(python3 "$HERE/workloads/sqlite_writes.py" --db "$WORK/sqlite/bench.db" --rows $rows --cache-kib 400000 --seconds $RUN_SECONDS --tx-per-s $tps)
  timeout $((RUN_SECONDS + 120)) "${cmd[@]}" > "$WORK/sqlite.out" 2>&1 &
  local tpid=$!; STARTED+=("$tpid")
  wait_for_line "$WORK/sqlite.out" READY 120
  local pid; pid=$(pgrep -P "$tpid" -f sqlite_writes.py | head -1)
  sleep 3
  record sqlite-writes "$pid" "300ms 400ms 500ms" \
    "workload=SQLite (python3 sqlite3 module, PRAGMA cache_size=-400000, WAL, synchronous=OFF): a $rows-row table with an index, then $tps transactions/s, each 50 random UPDATEs, 10 INSERTs and 5 DELETEs" \
    "command=python3 datasets/workloads/sqlite_writes.py --db DB --rows $rows --cache-kib 400000 --seconds $RUN_SECONDS --tx-per-s $tps" \
    "versions=$(python3 --version), SQLite $(python3 -c 'import sqlite3; print(sqlite3.sqlite_version)')"
  stop_pid "$tpid"
}

rec_jvm_gc() {
  local classes="$WORK/jvm"
  mkdir -p "$classes"
  javac -d "$classes" "$HERE/workloads/GcChurn.java"
  local flags="-Xms512m -Xmx512m -XX:+AlwaysPreTouch -XX:+UseG1GC"
  # shellcheck disable=SC2086
  timeout $((RUN_SECONDS + 30)) java $flags -Xlog:gc:file="$WORK/gc.log" -cp "$classes" GcChurn 200 $RUN_SECONDS 150 > "$WORK/jvm.out" 2>&1 &
  local tpid=$!; STARTED+=("$tpid")
  wait_for_line "$WORK/jvm.out" READY 120
  local pid; pid=$(pgrep -P "$tpid" java | head -1)
  sleep 3
  record jvm-gc "$pid" "300ms 400ms 500ms" \
    "workload=JVM (G1, 512 MiB pre-touched heap): a 200 MiB live cache of 1 KiB byte arrays with entries replaced steadily, plus 150 MiB/s of short-lived request objects" \
    "command=java $flags -cp . GcChurn 200 $RUN_SECONDS 150 (datasets/workloads/GcChurn.java)" \
    "versions=$(java -version 2>&1 | sed -n 2p)"
  stop_pid "$tpid"
}

# ---------------------------------------------------------------------------------------------

install_packages
for name in "${ALL[@]}"; do
  [[ -z $ONLY || $ONLY == "$name" ]] || continue
  log "$name"
  "rec_${name//-/_}"
  stop_all
done
log "done: $(cd "$HERE" && ls -l ./*.trace | awk '{ print $NF, $5 }' | tr '\n' ' ')"
