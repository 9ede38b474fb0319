#!/usr/bin/env bash
# Run the HTTP cache conformance suite (github.com/http-tests/cache-tests, the
# suite behind cache-tests.fyi) against wsgicache in front of a reverse proxy,
# and print the score by section. Not part of CI.
#
#   git clone https://github.com/http-tests/cache-tests /path/to/cache-tests
#   bash benchmarks/conformance.sh /path/to/cache-tests          # or CACHE_TESTS_DIR=...
#   bash benchmarks/conformance.sh /path/to/cache-tests --no-cache   # the bare proxy, for comparison
#
# Needs node and npm (the suite's dependencies are installed on first use) and
# the Python test extras (waitress). Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE="${1:-${CACHE_TESTS_DIR:-}}"
FRONT_OPTIONS=("${@:2}")
if [ -z "$SUITE" ] || [ ! -f "$SUITE/tests/index.mjs" ]; then
    echo "usage: $0 PATH_TO_CACHE_TESTS [--no-cache]   (or set CACHE_TESTS_DIR)" >&2
    exit 2
fi
SUITE="$(cd "$SUITE" && pwd)"
PYTHON="${PYTHON:-python3}"
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        "$PYTHON" -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

[ -d "$SUITE/node_modules" ] || (cd "$SUITE" && npm install --no-audit --no-fund --silent)

ORIGIN_PORT="$(free_port)"
FRONT_PORT="$(free_port)"
RESULTS="$(mktemp /tmp/wsgicache-conformance.XXXXXX.json)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

LOOPBACK="$(pwd)/benchmarks/conformance_loopback.mjs"
(cd "$SUITE" && npm_config_protocol=http npm_config_port="$ORIGIN_PORT" \
    npm_config_pidfile="$RESULTS.pid" exec node --import "$LOOPBACK" test-engine/server/server.mjs \
    >/dev/null 2>&1) &
pids+=($!)
wait_port "$ORIGIN_PORT"
"$PYTHON" benchmarks/conformance_front.py --origin "127.0.0.1:$ORIGIN_PORT" --port "$FRONT_PORT" \
    ${FRONT_OPTIONS[@]+"${FRONT_OPTIONS[@]}"} &
pids+=($!)
wait_port "$FRONT_PORT"

(cd "$SUITE" && npm_config_base="http://127.0.0.1:$FRONT_PORT" npm_config_id="" npm_package_config_id="" \
    node --no-warnings test-engine/cli.mjs) > "$RESULTS"
echo "suite: $SUITE ($(git -C "$SUITE" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"
echo "results: $RESULTS"
node benchmarks/conformance_score.mjs "$SUITE" "$RESULTS"
