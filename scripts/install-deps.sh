#!/usr/bin/env bash
# Installs the Debian packages regcache's tests and benchmark use, when missing:
#   docker-registry (the real upstream, and distribution's proxy for the benchmark),
#   skopeo and containerd (real clients), nginx-light and wrk (benchmark only, with --bench).
# Needs root (apt-get). Safe to run again: it installs only what is not there.
set -euo pipefail

need=()
check() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
check docker-registry docker-registry
check skopeo skopeo
check containerd containerd
check ctr containerd
check openssl openssl
if [[ "${1:-}" == "--bench" ]]; then
  check nginx nginx-light
  check wrk wrk
  check curl curl
fi

if ((${#need[@]})); then
  mapfile -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "installing: ${pkgs[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: need root to run: apt-get install -y ${pkgs[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi
# Debian starts these services on install; the tests run their own instances.
for svc in docker-registry containerd nginx; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
