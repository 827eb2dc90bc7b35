#!/usr/bin/env bash
# Real defects planted in the interop gateways: each is one edit of a shipped config
# (tests/interop/*.in), the kind a lab meets in the field, and each must FAIL the checks it
# breaks — with the right reason. Run by tests/interop/run.sh after the clean suite (which
# proves the unedited configs PASS what they enforce). Loopback only; every run bounded
# (REQS requests at RATE, default 2000 at 200/s).
#
#   tests/interop/defects.sh GAUNTLET_BINARY OUT_DIR
#
# Defects:
#   haproxy-late-mtls     `verify optional crt-ignore-err all` + `http-request reject`: the
#                         handshake accepts any certificate, the request is refused afterwards
#                         → the five MTLS checks fail ("without a TLS alert")
#   nginx-shared-cache    `proxy_cache` on /api keyed on the path: one identity's answer is
#                         served to the next → allowed checks fail ("never arrived")
#   caddy-admin-denylist  a deny-list on `/admin/*`: `/admin` itself is open → POL-002-ROOT leaks
#   haproxy-method-denylist  reports refuse DELETE only → PUT/PATCH/POST/lowercase leak
# Exit: 0 every defect caught as expected, 1 not.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
gauntlet="$1" out="$2"
reqs="${REQS:-2000}" rate="${RATE:-200/s}"
mkdir -p "$out"

# plant NAME FILE: copies the interop dir to $out/NAME and applies the edit named NAME to
# FILE there (python, each replaced text must be found exactly once).
plant() {
    local name="$1" file="$2" d="$out/defect-$1"
    rm -rf "$d"; mkdir -p "$d"
    cp "$here"/{gateways.sh,haproxy.cfg.in,nginx.conf.in,Caddyfile.in,jwt.js} "$d/"
    python3 - "$name" "$d/$file" <<'PY' || return 1
import sys
name, path = sys.argv[1], sys.argv[2]
s = open(path).read()
def sub(a, b):
    global s
    if s.count(a) != 1:
        sys.exit(f"defects: {name}: the text to edit is not in {path} exactly once: {a!r}")
    s = s.replace(a, b)
if name == "haproxy-late-mtls":
    sub("verify required", "verify optional crt-ignore-err all ca-ignore-err all")
    sub("    capture request header x-gauntlet-tag len 96\n",
        "    capture request header x-gauntlet-tag len 96\n"
        "    http-request reject unless { ssl_c_used } { ssl_c_verify 0 }\n")
elif name == "nginx-shared-cache":
    sub("daemon off;\n", "daemon off;\nuser root;\n")
    sub("    limit_req_status 429;\n",
        "    limit_req_status 429;\n    proxy_cache_path @TMP@/cache keys_zone=apicache:1m max_size=10m;\n")
    sub("            limit_except GET POST { deny all; }\n            auth_request /_auth/any;\n",
        "            limit_except GET POST { deny all; }\n            proxy_cache apicache;\n"
        "            proxy_cache_valid 200 1s;\n            auth_request /_auth/any;\n")
elif name == "caddy-admin-denylist":
    a = s.index("        # RBAC on the path")
    b = s.index("        respond 403\n", a) + len("        respond 403\n")
    s = s[:a] + """        # RBAC as a deny-list: the admin and reports areas need their group, the rest is
        # open to any verified certificate.
        @adminzone path /admin/*
        handle @adminzone {
            @notadmin expression `{client_ou} != "admin"`
            respond @notadmin 403
            import upstream
        }
        @reportszone path /reports/*
        handle @reportszone {
            @notfinance expression `{client_ou} != "finance"`
            respond @notfinance 403
            import upstream
        }
        handle {
            import upstream
        }
""" + s[b:]
elif name == "haproxy-method-denylist":
    sub("r_reports m_get g_finance", "r_reports !{ method DELETE } g_finance")
else:
    sys.exit(f"defects: no edit named {name}")
open(path, "w").write(s)
PY
}

# expect NAME RESULTS CHECK:REASON_PART...: each CHECK failed and its reason contains
# REASON_PART; the run's verdict is FAIL.
expect() {
    local name="$1" res="$2"; shift 2
    python3 - "$name" "$res/summary.json" "$@" <<'PY'
import json, sys
name, path, wants = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    s = json.load(open(path))
except Exception as e:
    sys.exit(f"defect {name}: NOT CAUGHT — no summary ({e})")
by = {c["id"]: c for c in s["checks"]}
bad = []
for w in wants:
    cid, part = w.split(":", 1)
    c = by.get(cid)
    if c is None or c["result"] != "fail" or part not in (c.get("reason") or ""):
        bad.append(f"{cid} {c and c['result']}: {c and c.get('reason')!r}")
if s["verdict"] != "fail":
    bad.append(f"verdict {s['verdict']}")
if bad:
    print(f"defect {name}: NOT CAUGHT as expected — " + "; ".join(bad))
    sys.exit(1)
print(f"ok — defect {name}: verdict FAIL, caught by " + ", ".join(w.split(":")[0] for w in wants))
PY
}

# run_defect NAME KIND FILE PROTO CHECK:REASON...
run_defect() {
    local name="$1" kind="$2" file="$3" proto="$4"; shift 4
    plant "$name" "$file" || return 1
    local d="$out/defect-$name"
    (
        export GW_CERTS="$repo/certs"
        # shellcheck source=/dev/null
        . "$d/gateways.sh"
        oport=$(gw_free_port)
        gw_start "$kind" "127.0.0.1:$oport" >/dev/null || { echo "defect $name: $kind did not start"; exit 1; }
        gwdir="$GW_DIR"
        trap 'gw_stop "$gwdir"' EXIT
        cat >"$d/scenario.yaml" <<Y
gauntlet: 1
name: defect-$name
include:
  - $repo/scenarios/targets/$kind.yaml
  - $repo/scenarios/checks/zt-core.yaml
target:
  url: https://127.0.0.1:$GW_PORT
  ca: $repo/certs/ca.pem
  server_name: localhost
  protocol: $proto
  timeout: 5s
oracle: { listen: "127.0.0.1:$oport" }
phases:
  - { name: load, requests: $reqs, rate: $rate, mix: { "tag:legit": 60, "tag:attack": 30, "tag:limit": 10 } }
Y
        timeout 120 "$gauntlet" run "$d/scenario.yaml" --headless --out "$d/res" >"$d/run.log" 2>&1
    )
    expect "$name" "$d/res" "$@"
}

failed=0
run_defect haproxy-late-mtls haproxy haproxy.cfg.in h1 \
    ZT-AUTHN-MTLS-001:"without a TLS alert" ZT-AUTHN-MTLS-002:"without a TLS alert" \
    ZT-AUTHN-MTLS-003:"without a TLS alert" ZT-AUTHN-MTLS-004:"without a TLS alert" \
    ZT-AUTHN-MTLS-005:"without a TLS alert" || failed=1
run_defect nginx-shared-cache nginx nginx.conf.in h1 \
    ZT-BASE-CTRL-001:"never arrived at the oracle" || failed=1
run_defect caddy-admin-denylist caddy Caddyfile.in h1 ZT-AUTHZ-POL-002-ROOT:leak || failed=1
run_defect haproxy-method-denylist haproxy haproxy.cfg.in h1 \
    ZT-AUTHZ-POL-003-PUT:leak ZT-AUTHZ-POL-003-PATCH:leak ZT-AUTHZ-POL-003-POST:leak \
    ZT-AUTHZ-POL-003-LOWER:leak || failed=1
exit "$failed"
