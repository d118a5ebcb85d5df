#!/usr/bin/env bash
# Installs what Ambit needs on a fresh Debian machine (as root): missing Debian packages, then the npm packages
# (which include the pinned Node 24 runtime). Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A wanted=(
  [ip]=iproute2
  [iptables-restore]=iptables
  [nsenter]=util-linux
  [unshare]=util-linux
  [curl]=curl
  [tcpdump]=tcpdump
  # counts the agent logger's writes in test/integration/agent-logging.test.ts.
  [strace]=strace
  [kubectl]=kubernetes-client
  # node-gyp builds the agent's native addon (agent/native) during npm ci.
  [g++]=g++
  [make]=make
  [python3]=python3
)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
[ -x /usr/lib/cni/ptp ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
# The nginx-sidecar bench baseline (bench/tools/nginx-sidecar.ts, tested by test/integration/nginx-sidecar.test.ts):
# nginx with its stream module doing mutual TLS. Debian's plain nginx and the stream module are the lightest pair with
# both (nginx-light only adds an HTTP echo module); nginx itself is in /usr/sbin, outside a non-root PATH.
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run this script as root (or: apt-get install -y ${missing[*]})" >&2
    exit 2
  fi
  mapfile -t unique < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup: installing Debian packages: ${unique[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${unique[@]}" >/dev/null
fi

# promtool (checks the agent's /metrics in tests) ships in Debian's prometheus package; take just that
# binary instead of installing a Prometheus server and its service.
if ! command -v promtool >/dev/null 2>&1 && [ ! -x .tools/promtool ]; then
  echo "setup: extracting promtool from Debian's prometheus package into .tools/"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download -qq prometheus; }) 
  dpkg -x "$tmp"/prometheus_*.deb "$tmp/root"
  mkdir -p .tools && cp "$tmp/root/usr/bin/promtool" .tools/promtool
  rm -rf "$tmp"
fi

if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (including Node 24)"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup: ready (node $(node_modules/.bin/node --version))"
