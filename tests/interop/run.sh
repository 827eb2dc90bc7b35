#!/usr/bin/env bash
# The interop suite: gauntlet against third-party gateways it was never developed against,
# each configured here as a zero-trust gateway (tests/interop/*.in; what each enforces is in
# FINDINGS.md), with gauntlet's oracle as their upstream. Everything stays on 127.0.0.1.
#
#   tests/interop/run.sh            # installs the packages when it can (root + apt-get)
#
# For each gateway: the unchanged zt-core pack through that gateway's shipped profile
# (scenarios/targets/KIND.yaml: its routes and the features it claims) plus 35 identities with their own client certificates
# (minted from certs/ca.pem), 1,100 req/s for 20 s; tests/interop/expect.py then asserts the
# verdicts expected of that gateway (what it enforces and what it does not), no request
# without an answer, and the rate reached. Then a recorded capture is replayed through each
# gateway (run-replay.sh): the same zero-trust verdicts must hold. Last, real defects planted
# in the same configs (defects.sh) must each FAIL the checks they break. Environment: GAUNTLET (binary; default: a release
# build of this checkout), OUT (work dir; default a temp dir), RATE, DURATION, GATEWAYS
# (e.g. "haproxy:h1 nginx:h1"). Exit: 0 all held, 1 something did not, 3 could not run
# (a package missing and not installable) — the message says which.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
rate="${RATE:-1100/s}"
duration="${DURATION:-20s}"
cases="${GATEWAYS:-haproxy:h1 haproxy:h2 nginx:h1 caddy:h1}"

missing=()
for cmd in haproxy nginx caddy openssl python3; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
[ -f /usr/share/nginx/modules/ngx_http_js_module.so ] || missing+=("njs")
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "interop: installing haproxy nginx libnginx-mod-http-js caddy (missing: ${missing[*]})"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy nginx libnginx-mod-http-js caddy openssl python3 >/dev/null 2>&1; then
            echo "interop: NOT RUN — could not install the gateways (apt-get failed; missing: ${missing[*]})"
            exit 3
        fi
    else
        echo "interop: NOT RUN — missing ${missing[*]}; run as root on Debian (apt-get) to install them"
        exit 3
    fi
fi

gauntlet="${GAUNTLET:-}"
if [ -z "$gauntlet" ]; then
    (cd "$repo" && cargo build --release --locked -q) || { echo "interop: cannot build gauntlet"; exit 1; }
    gauntlet="$repo/target/release/gauntlet"
fi
# The test PKI the configs and the pack use.
"$gauntlet" certs init --dir "$repo/certs" >/dev/null || exit 1

out="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gauntlet-interop.XXXXXX")}"
mkdir -p "$out"
failed=0
for c in $cases; do
    kind="${c%%:*}" proto="${c##*:}"
    name="$kind-$proto"
    # The unchanged pack through the gateway's own shipped profile.
    OUT="$out" GAUNTLET="$gauntlet" MIX=suite IDS=35 NAME="$name" GW_KEEPALIVE="${GW_KEEPALIVE:-10s}" \
        PROFILE="$repo/scenarios/targets/$kind.yaml" \
        "$here/run-load.sh" "$kind" "$proto" "$rate" "$duration" >"$out/$name.digest" 2>&1
    if [ ! -f "$out/res-$name/summary.json" ]; then
        echo "interop $kind $proto: no results (see $out/$name.digest and $out/$name.run.log)"
        tail -5 "$out/$name.run.log" 2>/dev/null
        failed=1
        continue
    fi
    python3 "$here/expect.py" "$kind" "$out/res-$name" || failed=1
done
# Captured traffic replayed through each gateway (once per kind).
replayed=""
for c in $cases; do
    kind="${c%%:*}"
    case " $replayed " in *" $kind "*) continue ;; esac
    replayed="$replayed $kind"
    OUT="$out" GAUNTLET="$gauntlet" "$here/run-replay.sh" "$kind" || failed=1
done
# Real defects planted in the same configs: each must FAIL the checks it breaks.
"$here/defects.sh" "$gauntlet" "$out" || failed=1
echo "interop: results in $out"
exit "$failed"
