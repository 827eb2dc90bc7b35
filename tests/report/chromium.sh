#!/usr/bin/env bash
# report.html in a real browser: runs a scenario with network events and a planted leak
# against the embedded reference gateway, renders its report.html with headless Chromium
# (Debian package `chromium`, installed when missing, as root) to a PNG, and fails on any
# console message, on anything in the page the browser would fetch or run (it must need
# nothing but itself: no src/href/url()/@import/<link>/<script> in the DOM it built; name
# resolution is switched off besides), or on a page that did not render. `--update-docs` copies the PNG to docs/report.png.
# Usage: tests/report/chromium.sh [--update-docs]   (GAUNTLET=path to the binary; default: a
# release build). Exit 0 pass, 1 fail, 3 Chromium not available (said why).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${GAUNTLET:-$root/target/release/gauntlet}"
[ -x "$bin" ] || { echo "tests/report/chromium.sh: build first (cargo build --release) or set GAUNTLET" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium (Debian package) for the report check"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || true
    browser=$(command -v chromium || true)
fi
if [ -z "$browser" ]; then
    echo "report check NOT RUN: Chromium is not installed (apt-get install chromium, as root)"
    exit 3
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$root"
[ -e certs/ca.pem ] || "$bin" certs init >/dev/null
# Events (bands on the time charts), conditions side by side, and leaks (the violations chart).
set +e
"$bin" demo --headless --scenario scenarios/fail-closed.yaml --flaw ignore-missing-token --out "$tmp/run" >"$tmp/run.log" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || { echo "report check: the run should FAIL on the planted leak (exit $rc)"; tail -20 "$tmp/run.log"; exit 1; }
page="$tmp/run/report.html"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --enable-logging=stderr --v=0 --log-level=0 \
    --host-resolver-rules="MAP * ~NOTFOUND" \
    --window-size=1000,4200 --screenshot="$tmp/report.png" "file://$page" >"$tmp/chromium.log" 2>&1 || true
fail=0
if grep -E "CONSOLE|Uncaught|Refused to|net::ERR_" "$tmp/chromium.log"; then
    echo "report check: the browser reported the lines above"; fail=1
fi
size=$(stat -c %s "$tmp/report.png" 2>/dev/null || echo 0)
if [ "$size" -lt 50000 ]; then
    echo "report check: no screenshot, or a blank one ($size bytes)"; tail -5 "$tmp/chromium.log"; fail=1
fi
# The DOM as the browser built it: every chart is there.
"$browser" --headless --no-sandbox --disable-gpu --dump-dom "file://$page" 2>/dev/null >"$tmp/dom.html" || true
if grep -Eo "(src|href)=|url\(|@import|<link|<script" "$tmp/dom.html" | sort | uniq -c; then
    echo "report check: the page would fetch or run something (above)"; fail=1
fi
for want in "Latency over time" "Planned, finished and answered rate" "Violations over time" "Latency histogram" "Latency per network condition"; do
    grep -q "$want" "$tmp/dom.html" || { echo "report check: \`$want\` not in the rendered page"; fail=1; }
done
# Printed (A4, as a lab would hand it on): a PDF comes out.
"$browser" --headless --no-sandbox --disable-gpu --no-pdf-header-footer --print-to-pdf="$tmp/report.pdf" "file://$page" >/dev/null 2>&1 || true
pdf=$(stat -c %s "$tmp/report.pdf" 2>/dev/null || echo 0)
pages=$(grep -ac "/Type /Page\b\|/Type/Page\b" "$tmp/report.pdf" 2>/dev/null || true)
pages=${pages:-0}
if [ "$pdf" -lt 20000 ] || [ "$pages" -lt 1 ]; then
    echo "report check: printing gave no PDF ($pdf bytes, $pages pages)"; fail=1
fi
if [ "${1:-}" = "--update-docs" ] && [ "$fail" = 0 ]; then
    cp "$tmp/report.png" "$root/docs/report.png"
    echo "docs/report.png updated"
fi
[ "$fail" = 0 ] && echo "report check PASS: report.html rendered by $("$browser" --version 2>/dev/null | head -1) with no console message and no request ($size-byte PNG; printed: $pdf-byte PDF)"
exit "$fail"
