# Shared helpers for scripts/run, scripts/test and scripts/bench (sourced).
# The tests and tools use Debian's Python (/usr/bin/python3): the python3
# first on PATH may be another interpreter that cannot see Debian's modules.

RX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RX_PY=/usr/bin/python3
export DEBIAN_FRONTEND=noninteractive

rx_packages() {
    local groups=" $* "
    while read -r group pkg; do
        case "$group" in ''|'#'*) continue ;; esac
        [[ "$groups" == *" $group "* ]] && echo "$pkg"
    done < "$RX_ROOT/scripts/packages"
}

# Installs the packages of the given groups that are not installed yet.
rx_install() {
    local missing=()
    local pkg
    for pkg in $(rx_packages "$@"); do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# rx_build DIR BUILD_TYPE [cmake args...]
rx_build() {
    local dir=$1 type=$2
    shift 2
    cmake -S "$RX_ROOT" -B "$RX_ROOT/$dir" -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null &&
        cmake --build "$RX_ROOT/$dir" -j "$(nproc)"
}

# rx_wait_file FILE SECONDS: waits until FILE exists and is not empty.
rx_wait_file() {
    local file=$1 deadline=$((SECONDS + $2))
    while [ ! -s "$file" ]; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.05
    done
}

# A free loopback TCP port (redis-server cannot listen on port 0).
rx_free_port() {
    "$RX_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

RX_PIDS=()
rx_cleanup() {
    local pid
    for pid in "${RX_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${RX_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
}

# rx_start_fakex BUILD_DIR WORKDIR [extra args]: starts the fake exchange on a
# free port and sets FAKEX_URL, FAKEX_WS_URL and FAKEX_PID.
rx_start_fakex() {
    local build=$1 work=$2
    shift 2
    rm -f "$work/fakex.port"
    "$RX_ROOT/$build/tests/fakex/fakex" --fixtures "$RX_ROOT/tests/fixtures" \
        --listen 127.0.0.1:0 --port-file "$work/fakex.port" "$@" 2>"$work/fakex.log" &
    FAKEX_PID=$!
    RX_PIDS+=("$FAKEX_PID")
    rx_wait_file "$work/fakex.port" 10 || { echo "fake exchange did not start; see $work/fakex.log" >&2; return 1; }
    export FAKEX_URL="http://127.0.0.1:$(cat "$work/fakex.port")"
    export FAKEX_WS_URL="ws://127.0.0.1:$(cat "$work/fakex.port")"
}

# rx_start_redis WORKDIR: starts a private redis-server; sets REDIS_PORT and
# REDIS_PID.
rx_start_redis() {
    local work=$1
    REDIS_PORT=$(rx_free_port)
    mkdir -p "$work/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$work/redis" --save '' \
        --appendonly no --enable-debug-command yes >"$work/redis.log" 2>&1 &
    REDIS_PID=$!
    RX_PIDS+=("$REDIS_PID")
    local deadline=$((SECONDS + 10))
    until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && { echo "redis-server did not start; see $work/redis.log" >&2; return 1; }
        sleep 0.05
    done
    export REDIS_PORT
}

# Test-only tools from npm, pinned, into .tools/ (not committed): the
# OpenAPI lint (@redocly/cli; 1.34.21 depends on a package missing from the
# registry, hence the exact pin) and playwright-core for the page test, at
# the release built for Debian 12's Chromium 156. Best effort: without npm
# those tests skip and say why.
RX_NPM_TOOLS=("@redocly/cli@1.34.20" "playwright-core@1.64.1")
rx_install_npm_tools() {
    local tool name missing=()
    for tool in "${RX_NPM_TOOLS[@]}"; do
        name=${tool%@*}
        [ -f "$RX_ROOT/.tools/node_modules/$name/package.json" ] || missing+=("$tool")
    done
    if [ ${#missing[@]} -gt 0 ] && command -v npm >/dev/null 2>&1; then
        npm install --silent --no-audit --no-fund --prefix "$RX_ROOT/.tools" "${missing[@]}" \
            >/dev/null 2>&1 || echo "warning: could not install ${missing[*]}; their tests will skip" >&2
    fi
    local redocly="$RX_ROOT/.tools/node_modules/.bin/redocly"
    [ -x "$redocly" ] && export REDOCLY_CLI="$redocly"
    return 0
}
