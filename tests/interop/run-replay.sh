#!/usr/bin/env bash
# Capture replay through a third-party gateway: tests/captures/shop.pcap (a shop's recorded
# traffic: three users, anonymous visitors, HTTP/1.1 and h2c) replayed through KIND with
# gauntlet's oracle as its upstream, every request sent as the identity its captured token
# maps to, judged by the zero-trust policy of scenarios/replay-shop.yaml or by the recorded
# answer. The same verdict must hold for any gateway its profile describes: every gateway
# here passes, and what its profile does not claim (Caddy: `jwt`) is counted out of scope,
# not judged. Loopback only; bounded (the capture played LOOPS times).
#
#   run-replay.sh KIND        KIND: haproxy | nginx | caddy
#
# Environment: GAUNTLET (binary), OUT (work dir), LOOPS (default 10). Prints one line; exit 0
# when the expectations held.
set -u
kind="${1:?usage: run-replay.sh KIND}"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${OUT:-/tmp/gauntlet-interop}"
gauntlet="${GAUNTLET:-$repo/target/release/gauntlet}"
loops="${LOOPS:-10}"
mkdir -p "$out"
# shellcheck source=gateways.sh
. "$here/gateways.sh"
oracle_port="$(gw_free_port)"
gw_start "$kind" "127.0.0.1:$oracle_port" >/dev/null || exit 1
trap 'gw_stop "$GW_DIR"' EXIT
c="$repo/certs"
tok() { echo "token: { jwt: { alg: RS256, key: $c/jwt-rs256.key, kid: rs256-1, claims: { sub: $1, groups: [$2], aud: gauntlet-gateway, iss: \"https://idp.gauntlet.test\", exp: +1h, iat: now } } }"; }
scenario="$out/replay-$kind.yaml"
cat > "$scenario" <<YAML
gauntlet: 1
name: replay-$kind
include: [$repo/scenarios/targets/$kind.yaml]
target: { url: "https://127.0.0.1:$GW_PORT", ca: $c/ca.pem, server_name: localhost, protocol: h1, max_in_flight: 32, timeout: 5s }
oracle: { listen: "127.0.0.1:$oracle_port" }
identities:
  alice: { principal: alice, cert: $c/alice.pem, key: $c/alice.key, $(tok alice eng) }
  bob: { principal: bob, cert: $c/bob.pem, key: $c/bob.key, $(tok bob finance) }
  carol: { principal: carol, cert: $c/carol.pem, key: $c/carol.key, $(tok carol admin) }
  visitor: { principal: alice, cert: $c/alice.pem, key: $c/alice.key }
phases:
  - name: shop
    replay:
      capture: $repo/tests/captures/shop.pcap
      loop: $loops
      speed: 4x
      identities:
        - { identity: alice, claim: { sub: "^alice$" } }
        - { identity: bob, claim: { sub: "^bob$" } }
        - { identity: carol, claim: { sub: "^carol$" } }
        - { identity: visitor, anonymous: true }
      policy:
        - { name: no-credential, identity: [visitor], expect: deny, requires: [jwt] }
        - { name: admin-only, path: "^/admin", identity: [alice, bob], expect: deny, requires: [rbac] }
YAML
res="$out/res-replay-$kind"
rm -rf "$res"
timeout 120 "$gauntlet" run "$scenario" --headless --out "$res" >"$out/replay-$kind.run.log" 2>&1
rc=$?
python3 - "$res/summary.json" "$kind" "$rc" "$loops" <<'PY'
import json, sys
path, kind, rc, loops = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
try:
    s = json.load(open(path))
except Exception as e:
    print(f"replay {kind}: FAIL — no summary ({e}); see the run log")
    sys.exit(1)
r = s["replay"][0]
problems = []
# 18 captured requests a loop; on a gateway without `jwt` the visitor's 2 are out of scope.
out_of_scope = r["unreplayable"].get("out_of_scope", 0)
want_oos = 2 * loops if kind == "caddy" else 0
if out_of_scope != want_oos:
    problems.append(f"out_of_scope {out_of_scope}, expected {want_oos}")
if r["replayed"] != 18 * loops - want_oos:
    problems.append(f"replayed {r['replayed']}, expected {18 * loops - want_oos}")
if s["verdict"] != "pass" or rc != 0:
    problems.append(f"verdict {s['verdict']} (exit {rc}): {s['reasons']}")
errors = s["requests"]["errors"]
if errors:
    problems.append(f"{errors} requests without an answer")
line = (f"replay {kind}: {r['replayed']} replayed, {out_of_scope} out of scope, compared {r['compared']}, "
        f"violations {sum(v for k, v in s['violations'].items() if k != 'total')}, verdict {s['verdict']}")
print(("FAIL — " + "; ".join(problems) + " — " if problems else "ok — ") + line)
sys.exit(1 if problems else 0)
PY
