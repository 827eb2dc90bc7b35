# Sourced by bench/run.sh and bench/soak.sh: one loopback nginx answering `200 ok` on every
# path, keep-alive without limits, no access log.
#
#   start_nginx WORK     # writes WORK/nginx.conf, starts nginx (pid in WORK/nginx.pid), sets PORT
start_nginx() {
  local work="$1"
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  mkdir -p "$work/logs"
  cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$PORT;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
CONF
  nginx -c "$work/nginx.conf" -p "$work"
  for _ in $(seq 50); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/')" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: nginx did not answer on 127.0.0.1:$PORT (see $work/logs/error.log)" >&2
  return 1
}
