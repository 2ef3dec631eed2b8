#!/usr/bin/env bash
# Installs the Debian packages regcache's tests and benchmark use, when missing:
#   docker-registry (the real upstream, and distribution's proxy for the benchmark),
#   skopeo, containerd and podman (real clients; podman pushes to hosted repositories), chromium (the page's browser tests, driven by playwright-core),
#   prometheus (its promtool checks and unit-tests config/prometheus/alerts.yaml), postgresql (the shared
#   MetadataStore's tests), Ceph's monitor, OSD and RADOS Gateway (the S3 BlobStore's tests, see
#   test/helpers/ceph-rgw.ts), nginx-light and wrk (benchmark only, with --bench).
# `npm test` and CI (.ci/run) both run it first, so a fresh Debian machine needs no third
# command: as root it installs what is missing; otherwise it fails naming the command.
# --check only reports (exit 1 when something is missing). Safe to run again: it installs
# only what is not there.
set -euo pipefail

bench=false check_only=false
for arg in "$@"; do
  case "$arg" in
    --bench) bench=true ;;
    --check) check_only=true ;;
    *) echo "usage: bash scripts/install-deps.sh [--bench] [--check]" >&2; exit 2 ;;
  esac
done

need=()
check() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
check docker-registry docker-registry
check skopeo skopeo
check containerd containerd
check ctr containerd
check podman podman
check openssl openssl
check chromium chromium
check promtool prometheus
check pg_ctlcluster postgresql
# PostgreSQL's server binaries live under /usr/lib/postgresql/<major>/bin, not on PATH.
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
check ceph-mon ceph-mon
check ceph-osd ceph-osd
check radosgw radosgw
check radosgw-admin radosgw
check ceph ceph-common
check ceph-authtool ceph-common
check monmaptool ceph-base
if $bench; then
  check nginx nginx-light
  check wrk wrk
  check curl curl
fi

if ((${#need[@]})); then
  mapfile -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
  if $check_only; then
    echo "missing packages: ${pkgs[*]}" >&2
    exit 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: the tests need these Debian packages: ${pkgs[*]}. Install them as root with: sudo bash scripts/install-deps.sh (it runs apt-get install -y ${pkgs[*]})" >&2
    exit 1
  fi
  echo "installing: ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi
$check_only && exit 0
# Debian starts these services on install; the tests run their own instances.
for svc in docker-registry containerd nginx prometheus postgresql; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
