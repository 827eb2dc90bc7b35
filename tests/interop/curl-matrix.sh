#!/usr/bin/env bash
# Hand check of a gateway with curl: the zt-core cases one by one, plus the upstream's view of
# the headers (needs echo_upstream.py as the gateway's upstream). Loopback only.
#
#   curl-matrix.sh PORT [--http1.1|--http2]
#
# Prints one line per case: PASS/FAIL, the case, what was expected, what came back
# (HTTP status, or TLS:<curl exit code> when the handshake or first exchange failed).
set -u
port="${1:?usage: curl-matrix.sh PORT [--http1.1|--http2]}"
proto="${2:---http1.1}"
here="$(cd "$(dirname "$0")" && pwd)"
certs="${GW_CERTS:-$(cd "$here/../../certs" && pwd)}"
base="https://localhost:$port"
resolve=(--resolve "localhost:$port:127.0.0.1")
mint() { python3 "$here/mint.py" --certs "$certs" "$@"; }

T_ALICE="$(mint rs256 alice eng)"
T_BOB="$(mint es256 bob finance)"
T_CAROL="$(mint rs256 carol admin)"
pass=0
fail=0
body="$(mktemp)"
trap 'rm -f "$body"' EXIT

# req CERT TOKEN METHOD PATH [curl args...]: prints the status or TLS:<exit>
req() {
    local cert="$1" token="$2" method="$3" path="$4"
    shift 4
    local args=("$proto" -sk --cacert "$certs/ca.pem" "${resolve[@]}" --path-as-is -o "$body" -w '%{http_code}' -X "$method" --max-time 5)
    args=("${args[@]/-sk/-s}")
    [ -n "$cert" ] && args+=(--cert "$certs/$cert.pem" --key "$certs/$cert.key")
    [ -n "$token" ] && args+=(-H "authorization: Bearer $token")
    local code
    code="$(curl "${args[@]}" "$@" "$base$path")"
    local rc=$?
    if [ "$rc" -ne 0 ] && { [ "$code" = "000" ] || [ -z "$code" ]; }; then
        echo "TLS:$rc"
    else
        echo "$code"
    fi
}

# case NAME EXPECT_REGEX GOT
check() {
    local name="$1" want="$2" got="$3"
    if [[ "$got" =~ ^($want)$ ]]; then
        pass=$((pass + 1))
        printf 'PASS  %-44s want %-16s got %s\n' "$name" "$want" "$got"
    else
        fail=$((fail + 1))
        printf 'FAIL  %-44s want %-16s got %s\n' "$name" "$want" "$got"
    fi
}

TLS='TLS:(35|56|16|55|52)'
check "CTRL-001 alice RS256 GET /api/items" 200 "$(req alice "$T_ALICE" GET /api/items)"
check "CTRL-002 bob ES256 GET /reports/q3" 200 "$(req bob "$T_BOB" GET /reports/q3)"
check "CTRL-003 carol GET /admin/users" 200 "$(req carol "$T_CAROL" GET /admin/users)"
check "CTRL-004 bob POST /api/orders" 200 "$(req bob "$T_BOB" POST /api/orders -H 'content-type: application/json' --data '{"item": 42}')"
check "GET /public/x" 200 "$(req alice "$T_ALICE" GET /public/x)"
check "JWT-001 no token" 401 "$(req alice "" GET /api/items)"
check "JWT-001 Basic" 401 "$(req alice "" GET /api/items -H 'authorization: Basic YWxpY2U6cGFzc3dvcmQ=')"
check "JWT-002 alg nOnE" 401 "$(req alice "$(mint none alice admin)" GET /admin/users)"
check "JWT-003 bad signature" 401 "$(req alice "$(mint badsig)" GET /api/items)"
check "JWT-003 stripped signature" 401 "$(req alice "$(mint nosig)" GET /api/items)"
check "JWT-004 tampered groups" '401|403' "$(req alice "$(mint tampered)" GET /admin/users)"
check "JWT-005 HS256 key confusion" 401 "$(req alice "$(mint hs256)" GET /api/items)"
check "JWT-006 expired" 401 "$(req alice "$(mint expired)" GET /api/items)"
check "JWT-007 nbf in the future" 401 "$(req alice "$(mint future)" GET /api/items)"
check "JWT-008 wrong aud" '401|403' "$(req alice "$(mint wrongaud)" GET /api/items)"
check "JWT-009 wrong iss" 401 "$(req alice "$(mint wrongiss)" GET /api/items)"
check "JWT-010 unknown kid" 401 "$(req alice "$(mint unknownkid)" GET /api/items)"
check "JWT no exp claim" 401 "$(req alice "$(mint noexp)" GET /api/items)"
check "JWT-013 two Authorization headers" '400|401|403' "$(req alice "$T_ALICE" GET /admin/users -H 'authorization: Bearer forged.admin.token')"
check "MTLS-001 no client certificate" "$TLS" "$(req "" "$T_ALICE" GET /api/items)"
check "MTLS-002 rogue CA" "$TLS" "$(req alice-rogue "$T_ALICE" GET /api/items)"
check "MTLS-003 expired certificate" "$TLS" "$(req alice-expired "$T_ALICE" GET /api/items)"
check "MTLS-004 not-yet-valid certificate" "$TLS" "$(req alice-future "$T_ALICE" GET /api/items)"
check "MTLS-005 no clientAuth EKU" "$TLS" "$(req alice-noclientauth "$T_ALICE" GET /api/items)"
check "MTLS-008 bob token on alice cert" '401|403' "$(req alice "$T_BOB" GET /reports/q3)"
check "POL-001 unmapped /internal/metrics" '403|404' "$(req alice "$T_ALICE" GET /internal/metrics)"
check "POL-002 alice GET /admin/users" 403 "$(req alice "$T_ALICE" GET /admin/users)"
check "POL-003 bob DELETE /reports/q3" '403|405' "$(req bob "$T_BOB" DELETE /reports/q3)"
check "PATH-001 /public/../admin/users" '400|403' "$(req alice "$T_ALICE" GET /public/../admin/users)"
check "PATH-001-ENC /public/%2e%2e/admin/users" '400|403' "$(req alice "$T_ALICE" GET /public/%2e%2e/admin/users)"
check "PATH-001-ENC api /api/%2e%2e/admin/users" '400|403' "$(req alice "$T_ALICE" GET /api/%2e%2e/admin/users)"
check "PATH-002 /public%2f../admin/users" '400|403|404' "$(req alice "$T_ALICE" GET /public%2f../admin/users)"
check "PATH-003 //admin/users" '400|403|404' "$(req alice "$T_ALICE" GET //admin/users)"
check "PATH-003 /./admin/users" '400|403|404' "$(req alice "$T_ALICE" GET /./admin/users)"
check "PATH-003 /%61dmin/users" '400|403|404' "$(req alice "$T_ALICE" GET /%61dmin/users)"
check "PATH-003 /ADMIN/users" '400|403|404' "$(req alice "$T_ALICE" GET /ADMIN/users)"
check "PATH-004 /admin;x=y/users" '400|403|404' "$(req alice "$T_ALICE" GET '/admin;x=y/users')"
check "PATH api;x /api;x=y/../admin/users" '400|403|404' "$(req alice "$T_ALICE" GET '/api;x=y/../admin/users')"

# Header hygiene, seen from the upstream (echo_upstream.py answers with what it received).
code="$(req alice "$T_ALICE" GET /api/profile -H 'x-forwarded-user: admin' -H 'x-auth-request-user: admin' \
    -H 'x-forwarded-groups: admins' -H 'x-pomerium-claim-email: admin@corp.example' \
    -H 'cf-access-authenticated-user-email: admin@corp.example' \
    -H 'x-forwarded-client-cert: URI=spiffe://corp.example/admin' -H 'x-ssl-client-verify: SUCCESS' \
    -H 'x-gauntlet-tag: run1.ZT-HDR-PROP-002.42')"
seen="$(python3 - "$body" <<'EOF'
import json, sys
try:
    h = json.load(open(sys.argv[1]))["headers"]
except Exception:
    print("no-echo"); sys.exit()
bad = [n for n in ("x-auth-request-user", "x-forwarded-groups", "x-pomerium-claim-email",
                   "cf-access-authenticated-user-email", "x-forwarded-client-cert",
                   "x-ssl-client-verify") if n in h]
print("user=%s tag=%s forged=%s" % (",".join(h.get("x-forwarded-user", [])),
      ",".join(h.get("x-gauntlet-tag", [])), ",".join(bad) or "none"))
EOF
)"
check "HDR-PROP-002..004 status" 200 "$code"
check "HDR-PROP upstream view" 'user=alice tag=run1.ZT-HDR-PROP-002.42 forged=none' "$seen"

# Rate limit: 12 back-to-back GETs on one identity (reuses one connection: curl's URL globbing).
codes="$(curl "$proto" -s --cacert "$certs/ca.pem" "${resolve[@]}" --cert "$certs/alice.pem" --key "$certs/alice.key" \
    -H "authorization: Bearer $T_ALICE" -o /dev/null -w '%{http_code} ' --max-time 10 "$base/api/limited/ping?[1-12]")"
n429="$(grep -o 429 <<<"$codes" | wc -l)"
check "DOS-RATE-001 12 quick GETs -> some 429" 'yes' "$([ "$n429" -gt 0 ] && echo yes || echo "no ($codes)")"

echo "$pass passed, $fail failed"
