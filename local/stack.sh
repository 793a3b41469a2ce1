#!/usr/bin/env bash
# The local stack: Keycloak (real server), moto (DynamoDB, SQS, KMS, SNS,
# Secrets Manager), toxiproxy in front of Keycloak, and the Lambda RIE.
#
#   local/stack.sh install   fetch whatever is missing into .cache/
#   local/stack.sh up        install, then start what is not running; wait until ready
#   local/stack.sh down      stop what `up` started (by pid file, never by name)
#   local/stack.sh status    one line per service
#
# Everything lives under $KCG_CACHE (default .cache/, git-ignored): downloads,
# the venv, binaries, pid files (run/) and logs (logs/). Servers bind to
# 127.0.0.1 only.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/local/versions.env"
cache=${KCG_CACHE:-$root/.cache}
run=$cache/run
logs=$cache/logs
bin=$cache/bin
kc_home=$cache/keycloak-$KEYCLOAK_VERSION
mkdir -p "$run" "$logs" "$bin"

# Ports (see README).
MOTO_PORT=4566
KEYCLOAK_PORT=8180
KEYCLOAK_MGMT_PORT=9180
TOXIPROXY_PORT=8474
KEYCLOAK_PROXY_PORT=18180

say() { printf '%s\n' "$*" >&2; }
die() { say "stack: $*"; exit 1; }

# --- install -----------------------------------------------------------------

# pick_java prints a JAVA_HOME that Keycloak supports (17, 21, 25), newest first.
pick_java() {
  local best="" best_major=0 home major
  for home in ${JAVA_HOME:-} /usr/lib/jvm/*; do
    [ -x "$home/bin/java" ] || continue
    major=$("$home/bin/java" -XshowSettings:properties -version 2>&1 |
      awk -F'= ' '/java.specification.version/ {print $2}')
    case "$major" in 17|21|25) ;; *) continue ;; esac
    if [ "$major" -gt "$best_major" ]; then best=$home best_major=$major; fi
  done
  [ -n "$best" ] || die "no JDK 17, 21 or 25 found (looked at \$JAVA_HOME and /usr/lib/jvm)"
  printf '%s\n' "$best"
}

install_keycloak() {
  [ -x "$kc_home/bin/kc.sh" ] && return
  command -v mvn >/dev/null || die "mvn is needed to fetch Keycloak (apt-get install maven)"
  say "installing Keycloak $KEYCLOAK_VERSION (mvn dependency:copy)"
  mvn -q -B dependency:copy \
    -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
    -DoutputDirectory="$cache/dl" >"$logs/install-keycloak.log" 2>&1 ||
    die "Keycloak download failed; see $logs/install-keycloak.log"
  rm -rf "$kc_home.tmp" && mkdir -p "$kc_home.tmp"
  local zip=$cache/dl/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip
  if command -v unzip >/dev/null; then
    unzip -q "$zip" -d "$kc_home.tmp"
  else # Python's zipfile drops the exec bits the scripts need
    python3 -m zipfile -e "$zip" "$kc_home.tmp" && chmod +x "$kc_home.tmp"/keycloak-*/bin/*.sh
  fi
  mv "$kc_home.tmp/keycloak-$KEYCLOAK_VERSION" "$kc_home" && rm -rf "$kc_home.tmp"
}

install_python_tools() {
  local stamp=$cache/venv/.requirements
  if [ -f "$stamp" ] && cmp -s "$stamp" "$root/local/requirements.txt"; then return; fi
  say "installing Python tools into $cache/venv (pip)"
  python3 -m venv "$cache/venv"
  "$cache/venv/bin/pip" install -q --disable-pip-version-check -r "$root/local/requirements.txt" \
    >"$logs/install-python.log" 2>&1 || die "pip install failed; see $logs/install-python.log"
  cp "$root/local/requirements.txt" "$stamp"
}

install_go_tool() { # name module@version
  local name=$1 mod=$2 stamp=$bin/.$1.version
  if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$mod" ]; then return; fi
  say "installing $mod (go install)"
  GOBIN=$bin go install "$mod" >"$logs/install-$name.log" 2>&1 ||
    die "go install $mod failed; see $logs/install-$name.log"
  printf '%s' "$mod" >"$stamp"
}

# Headless Chromium for the dashboard's browser test (pkg/dashboard), from
# Debian's package: only as root, only when missing.
install_chromium() {
  [ -x /usr/bin/chromium ] && return
  if [ "$(id -u)" != 0 ]; then
    say "chromium is missing and we are not root: the dashboard browser test will fail (apt-get install chromium)"
    return
  fi
  say "installing chromium (apt-get)"
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; } \
    >"$logs/install-chromium.log" 2>&1 || die "apt-get install chromium failed; see $logs/install-chromium.log"
}

install() {
  install_chromium
  install_keycloak
  install_python_tools
  install_go_tool server "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  install_go_tool aws-lambda-rie "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$RIE_VERSION"
}

# --- processes -----------------------------------------------------------------

alive() { local f=$run/$1.pid; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

start() { # name command...
  local name=$1; shift
  if alive "$name"; then return; fi
  say "starting $name (log: $logs/$name.log)"
  nohup "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
}

wait_for() { # name url seconds [highest-ready-status]: ready once url answers 2xx (or up to the given status)
  local name=$1 url=$2 secs=$3 top=${4:-299} i code
  for ((i = 0; i < secs * 4; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null) || true
    if [ "${code:-0}" -ge 200 ] 2>/dev/null && [ "$code" -le "$top" ]; then return; fi
    alive "$name" || die "$name exited during start-up; see $logs/$name.log:
$(tail -n 20 "$logs/$name.log")"
    sleep 0.25
  done
  die "$name did not become ready at $url within ${secs}s; see $logs/$name.log"
}

up() {
  install
  start moto "$cache/venv/bin/python" "$root/local/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT"
  start toxiproxy "$bin/server" -host 127.0.0.1 -port "$TOXIPROXY_PORT"
  if ! alive keycloak; then
    # Realms are imported at start; existing realms are kept (dev H2 data in
    # the Keycloak folder), so a warm start does not re-import.
    mkdir -p "$kc_home/data/import" && cp "$root"/local/realms/*.json "$kc_home/data/import/"
    JAVA_HOME=$(pick_java) \
      KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=admin \
      start keycloak "$kc_home/bin/kc.sh" start-dev \
      --http-host=127.0.0.1 --http-port="$KEYCLOAK_PORT" \
      --http-management-port="$KEYCLOAK_MGMT_PORT" --health-enabled=true --import-realm
  fi
  wait_for moto "http://127.0.0.1:$MOTO_PORT/moto-api/" 60
  wait_for toxiproxy "http://127.0.0.1:$TOXIPROXY_PORT/version" 30
  # The shared proxy kcguard uses locally; tests make private ones.
  curl -fsS -o /dev/null -X POST "http://127.0.0.1:$TOXIPROXY_PORT/populate" \
    -d "[{\"name\":\"keycloak\",\"listen\":\"127.0.0.1:$KEYCLOAK_PROXY_PORT\",\"upstream\":\"127.0.0.1:$KEYCLOAK_PORT\",\"enabled\":true}]" ||
    die "could not create the toxiproxy proxy 'keycloak'"
  wait_for keycloak "http://127.0.0.1:$KEYCLOAK_MGMT_PORT/health/ready" 240
  wait_for keycloak "http://127.0.0.1:$KEYCLOAK_PORT/realms/janee/.well-known/openid-configuration" 60
  say "stack up: moto :$MOTO_PORT, keycloak :$KEYCLOAK_PORT (via toxiproxy :$KEYCLOAK_PROXY_PORT), toxiproxy admin :$TOXIPROXY_PORT"
}

stop() { # name
  local name=$1 f=$run/$1.pid pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  local f
  # Everything `up` (or `make up`) started has a pid file here; newest first.
  for f in $(ls -t "$run"/*.pid 2>/dev/null); do stop "$(basename "$f" .pid)"; done
}

status() {
  local f name
  for name in moto toxiproxy keycloak; do
    if alive "$name"; then echo "$name: running (pid $(cat "$run/$name.pid"))"; else echo "$name: stopped"; fi
  done
  for f in "$run"/*.pid; do
    [ -f "$f" ] || continue
    name=$(basename "$f" .pid)
    case $name in moto|toxiproxy|keycloak) continue ;; esac
    if alive "$name"; then echo "$name: running (pid $(cat "$f"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  status) status ;;
  start) shift; start "$@" ;;            # kcguard's own processes (make up)
  wait) shift; wait_for "$@" ;;
  *) say "usage: local/stack.sh install|up|down|status"; exit 2 ;;
esac
