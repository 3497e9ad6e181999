#!/usr/bin/env bash
# Transport throughput: migpilot's tcp: channel (io_uring) against iperf3, same machine, same run.
#   Benchmarks/transport.sh [GIB]      (default 1 GiB one way over 127.0.0.1)
set -euo pipefail
cd "$(dirname "$0")/.."
gib=${1:-1}
scripts/ensure-packages.sh iperf3 >/dev/null
swift build -c release --product migpilot-transport-bench >/dev/null
ours=$(.build/release/migpilot-transport-bench "$gib" 4 256 8 5)
echo "$ours"
iperf() { # $1: extra iperf3 client options; prints GB/s received
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    local server=$!
    trap 'kill $server 2>/dev/null' RETURN
    sleep 0.5
    # shellcheck disable=SC2086
    iperf3 -c 127.0.0.1 -p "$port" -n "${gib}G" $1 -J | python3 -c 'import json, sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e9))'
    wait "$server" 2>/dev/null || true
}
default=$(iperf "")
large=$(iperf "-l 1M")
gbs=$(echo "$ours" | sed -E 's/.*: ([0-9.]+) GB\/s.*/\1/')
echo "iperf3 -c 127.0.0.1 -n ${gib}G: ${default} GB/s (default 128 KiB writes), with -l 1M: ${large} GB/s"
python3 -c "print('transport / iperf3: %.2fx (default), %.2fx (-l 1M)' % ($gbs / $default, $gbs / $large))"
