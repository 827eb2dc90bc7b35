#!/usr/bin/env bash
# Start/stop third-party gateways (HAProxy 2.6, nginx 1.22 + njs, Caddy 2.6) configured like
# gauntlet's reference gateway, on a free loopback port, for interop runs. Loopback only.
#
# As a library:   . tests/interop/gateways.sh
#                 gw_start haproxy 127.0.0.1:9000     # sets GW_DIR GW_PORT GW_PID, prints them
#                 ...                                  # https://127.0.0.1:$GW_PORT
#                 gw_stop "$GW_DIR"
# As a command:   tests/interop/gateways.sh start KIND UPSTREAM [PORT]   -> "KIND PORT DIR PID"
#                 tests/interop/gateways.sh stop DIR
#                 tests/interop/gateways.sh render KIND OUTFILE        (env GW_PORT, GW_UPSTREAM, GW_TMP)
# KIND: haproxy | nginx | caddy. Environment (optional):
#   GW_CERTS           test PKI dir (default: <repo>/certs)
#   GW_KEEPALIVE       HAProxy `timeout http-keep-alive` / nginx keepalive_timeout (default 10s)
#   GW_CLIENT_TIMEOUT  HAProxy `timeout client` (default 30s)
#   GW_NBTHREAD        HAProxy `nbthread` (default 2)
#   GW_HAPROXY_DEBUG   1: run HAProxy with -d (prints every request/response head and, on
#                      an SSL error, "OpenSSL error[...]" lines to its log)
#   GW_WAIT            seconds to wait for the listener (default 10)
# Each start gets its own run dir (mktemp under ${TMPDIR:-/tmp}) holding the rendered config,
# the pid, the logs and temp files; `gw_stop` kills exactly that pid and removes nothing but
# the pid file (the logs stay for inspection).

GW_INTEROP="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GW_CERTS="${GW_CERTS:-$(cd "$GW_INTEROP/../../certs" 2>/dev/null && pwd)}"

# A free TCP port on 127.0.0.1 (bound and released; racy only against other allocators).
gw_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# gw_render TEMPLATE OUT: substitutes @PORT@ @UPSTREAM@ @CERTS@ @TMP@ @JSDIR@ @KEEPALIVE@
# @CLIENT_TIMEOUT@ @NBTHREAD@ from GW_PORT GW_UPSTREAM GW_CERTS GW_TMP GW_INTEROP GW_KEEPALIVE
# GW_CLIENT_TIMEOUT GW_NBTHREAD.
gw_render() {
    local tpl="$1" out="$2"
    : "${GW_PORT:?GW_PORT unset}" "${GW_UPSTREAM:?GW_UPSTREAM unset}" "${GW_TMP:?GW_TMP unset}"
    case "$GW_UPSTREAM" in
        127.*:* | localhost:* | \[::1\]:*) ;;
        *) echo "gw_render: upstream must be on loopback (got $GW_UPSTREAM)" >&2; return 1 ;;
    esac
    sed -e "s|@PORT@|$GW_PORT|g" \
        -e "s|@UPSTREAM@|$GW_UPSTREAM|g" \
        -e "s|@CERTS@|$GW_CERTS|g" \
        -e "s|@TMP@|$GW_TMP|g" \
        -e "s|@JSDIR@|$GW_INTEROP|g" \
        -e "s|@KEEPALIVE@|${GW_KEEPALIVE:-10s}|g" \
        -e "s|@CLIENT_TIMEOUT@|${GW_CLIENT_TIMEOUT:-30s}|g" \
        -e "s|@NBTHREAD@|${GW_NBTHREAD:-2}|g" \
        "$tpl" >"$out"
    if grep -q '@[A-Z_]*@' "$out"; then
        echo "gw_render: unreplaced placeholder in $out:" >&2
        grep -n '@[A-Z_]*@' "$out" >&2
        return 1
    fi
}

# gw_wait_listen PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
gw_wait_listen() {
    local port="$1" secs="${2:-${GW_WAIT:-10}}" i
    for ((i = 0; i < secs * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "gw_wait_listen: nothing listens on 127.0.0.1:$port after ${secs}s" >&2
    return 1
}

# gw_start KIND UPSTREAM [PORT]: renders KIND's template into a new run dir and starts it in
# the background; returns once it listens. Sets GW_DIR GW_PORT GW_PID; prints "KIND PORT DIR PID".
gw_start() {
    local kind="$1" upstream="$2" port="${3:-}"
    [ -n "$kind" ] && [ -n "$upstream" ] || { echo "usage: gw_start KIND UPSTREAM [PORT]" >&2; return 2; }
    [ -n "$port" ] || port="$(gw_free_port)"
    local dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/gauntlet-gw-$kind.XXXXXX")"
    chmod 700 "$dir"
    local pid
    # gw_render reads GW_PORT/GW_UPSTREAM/GW_TMP; pass them for this call only.
    local -a vars=(GW_PORT="$port" GW_UPSTREAM="$upstream" GW_TMP="$dir" GW_CERTS="$GW_CERTS"
        GW_KEEPALIVE="${GW_KEEPALIVE:-10s}" GW_CLIENT_TIMEOUT="${GW_CLIENT_TIMEOUT:-30s}"
        GW_NBTHREAD="${GW_NBTHREAD:-2}")
    case "$kind" in
        haproxy)
            # HAProxy wants the certificate and its key in one file.
            (umask 077; cat "$GW_CERTS/server.pem" "$GW_CERTS/server.key" >"$dir/server-combined.pem")
            env "${vars[@]}" bash "$GW_INTEROP/gateways.sh" render haproxy "$dir/haproxy.cfg" || return 1
            haproxy -c -q -f "$dir/haproxy.cfg" || { echo "gw_start: haproxy config invalid ($dir)" >&2; return 1; }
            local dflag=-db
            [ "${GW_HAPROXY_DEBUG:-0}" = 1 ] && dflag=-d
            haproxy "$dflag" -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
            pid=$!
            ;;
        nginx)
            mkdir -p "$dir/logs" "$dir/body" "$dir/proxy" "$dir/fastcgi" "$dir/uwsgi" "$dir/scgi"
            env "${vars[@]}" bash "$GW_INTEROP/gateways.sh" render nginx "$dir/nginx.conf" || return 1
            nginx -t -q -p "$dir" -e stderr -c "$dir/nginx.conf" || { echo "gw_start: nginx config invalid ($dir)" >&2; return 1; }
            nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/nginx.out" 2>&1 &
            pid=$!
            ;;
        caddy)
            env "${vars[@]}" bash "$GW_INTEROP/gateways.sh" render caddy "$dir/Caddyfile" || return 1
            # Caddy keeps state under XDG dirs: keep them in the run dir.
            XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" \
                caddy validate --config "$dir/Caddyfile" --adapter caddyfile >"$dir/validate.log" 2>&1 \
                || { cat "$dir/validate.log" >&2; echo "gw_start: Caddyfile invalid ($dir)" >&2; return 1; }
            XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" \
                caddy run --config "$dir/Caddyfile" --adapter caddyfile >"$dir/caddy.log" 2>&1 &
            pid=$!
            ;;
        *) echo "gw_start: unknown gateway '$kind' (haproxy | nginx | caddy)" >&2; return 2 ;;
    esac
    echo "$pid" >"$dir/pid"
    echo "$port" >"$dir/port"
    echo "$kind" >"$dir/kind"
    if ! gw_wait_listen "$port"; then
        tail -20 "$dir"/*.log "$dir"/*.out 2>/dev/null >&2
        gw_stop "$dir"
        return 1
    fi
    GW_DIR="$dir"
    GW_PORT="$port"
    GW_PID="$pid"
    export GW_DIR GW_PORT GW_PID
    echo "$kind $port $dir $pid"
}

# gw_stop DIR: stops the gateway started in DIR (its own pid only), waits up to 5 s, then kills.
gw_stop() {
    local dir="$1" pid i
    [ -f "$dir/pid" ] || return 0
    pid="$(cat "$dir/pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$dir/pid" "$dir/server-combined.pem"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    cmd="${1:-}"
    shift || true
    case "$cmd" in
        start) gw_start "$@" ;;
        stop) gw_stop "$@" ;;
        render)
            kind="$1" out="$2"
            case "$kind" in
                haproxy) gw_render "$GW_INTEROP/haproxy.cfg.in" "$out" ;;
                nginx) gw_render "$GW_INTEROP/nginx.conf.in" "$out" ;;
                caddy) gw_render "$GW_INTEROP/Caddyfile.in" "$out" ;;
                *) echo "unknown gateway $kind" >&2; exit 2 ;;
            esac
            ;;
        port) gw_free_port ;;
        *) sed -n '2,20p' "$0"; exit 2 ;;
    esac
fi
