#!/usr/bin/env bash
# Create a k3d cluster whose nodes pull every image through a running regcache.
#
# usage: scripts/k3d-cluster.sh [CLUSTER_NAME] [--mode ns|ports] [--config FILE]
#                               [--ca-file PATH | --insecure-skip-verify]
#                               [--username U --password-file F] [-- K3D_CREATE_ARGS...]
#
#   CLUSTER_NAME   default: regcache
#   --mode         ns (default): every registry goes to regcache's main port, routed by the
#                  ?ns= parameter containerd adds. ports: a registry with its own `port:` in
#                  the config goes to that port (one without still uses the main port).
#   --config       regcache config (default: $REGCACHE_CONFIG, else config/regcache.yaml)
#   --ca-file      CA that signed regcache's certificate (config with tls): mounted into
#                  every node at /etc/regcache/ca.pem
#   --username/--password-file   credentials when regcache has auth.htpasswd
#   after --        passed to `k3d cluster create` as is (e.g. --agents 2)
#
# regcache must already run, listening on 0.0.0.0 (e.g. `listen: 0.0.0.0:5000`), NOT on
# 127.0.0.1: the k3d nodes are containers, and the name host.k3d.internal that the generated
# registries.yaml uses resolves inside them to the docker network gateway, i.e. this host
# as seen from the cluster's docker network. A listener bound to loopback only cannot be
# reached from there. (A host firewall must also let the docker network reach the port.)
#
# The registries.yaml comes from:
#   node dist/cli.js containerd-config --format registries.yaml \
#     --endpoint http://host.k3d.internal:<listen port> [--mode ...] --default
# --default adds a "*" mirror, so registries regcache does not know are also asked there
# first; regcache answers 404 for them and containerd falls back to the registry itself.
set -euo pipefail

usage() { sed -n '2,17s/^# \{0,1\}//p' "$0"; }

NAME=regcache
MODE=ns
CONFIG=${REGCACHE_CONFIG:-config/regcache.yaml}
CA_FILE=
INSECURE=
USERNAME=
PASSWORD_FILE=
K3D_ARGS=()
NAME_SET=

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --mode) MODE=${2:?--mode needs ns or ports}; shift 2 ;;
    --mode=*) MODE=${1#*=}; shift ;;
    --config) CONFIG=${2:?--config needs a file}; shift 2 ;;
    --config=*) CONFIG=${1#*=}; shift ;;
    --ca-file) CA_FILE=${2:?--ca-file needs a path}; shift 2 ;;
    --insecure-skip-verify) INSECURE=1; shift ;;
    --username) USERNAME=${2:?--username needs a value}; shift 2 ;;
    --password-file) PASSWORD_FILE=${2:?--password-file needs a file}; shift 2 ;;
    --) shift; K3D_ARGS=("$@"); break ;;
    -*) echo "k3d-cluster.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
    *)
      if [[ -n $NAME_SET ]]; then echo "k3d-cluster.sh: unexpected argument $1" >&2; exit 2; fi
      NAME=$1; NAME_SET=1; shift ;;
  esac
done

case "$MODE" in ns|ports) ;; *) echo "k3d-cluster.sh: --mode must be ns or ports" >&2; exit 2 ;; esac

# Paths the user gave are relative to the current directory; then work from the repo root.
abspath() { if [[ -e $1 ]]; then printf '%s/%s\n' "$(cd "$(dirname "$1")" && pwd)" "$(basename "$1")"; else printf '%s\n' "$1"; fi; }
if [[ -n ${REGCACHE_CONFIG:-} || $CONFIG != config/regcache.yaml ]]; then CONFIG=$(abspath "$CONFIG"); fi
if [[ -n $CA_FILE ]]; then CA_FILE=$(abspath "$CA_FILE"); fi
if [[ -n $PASSWORD_FILE ]]; then PASSWORD_FILE=$(abspath "$PASSWORD_FILE"); fi
cd "$(dirname "$0")/.."

command -v k3d >/dev/null || { echo "k3d-cluster.sh: k3d is not installed (https://k3d.io)" >&2; exit 1; }
[[ -f dist/cli.js ]] || { echo "k3d-cluster.sh: dist/cli.js missing: run npm run build first" >&2; exit 1; }
[[ -f $CONFIG ]] || { echo "k3d-cluster.sh: config $CONFIG not found" >&2; exit 1; }

# Listen address and scheme, read with regcache's own config loader (validates the file too).
read -r LISTEN_HOST LISTEN_PORT SCHEME < <(node --input-type=module -e '
  const { pathToFileURL } = await import("node:url");
  const { loadConfigFile } = await import(pathToFileURL(process.argv[1]).href);
  try {
    const cfg = loadConfigFile(process.argv[2], process.env);
    console.log(cfg.listen.host, cfg.listen.port, cfg.tls ? "https" : "http");
  } catch (err) {
    console.error(`k3d-cluster.sh: ${err.message}`);
    process.exit(1);
  }
' "$PWD/dist/config/load.js" "$CONFIG") || { echo "k3d-cluster.sh: cannot read $CONFIG" >&2; exit 1; }

case "$LISTEN_HOST" in
  127.*|localhost|::1)
    echo "k3d-cluster.sh: $CONFIG has listen: $LISTEN_HOST:$LISTEN_PORT, which k3d nodes cannot reach." >&2
    echo "  Set listen: 0.0.0.0:$LISTEN_PORT (see the comment at the top of this script) and restart regcache." >&2
    exit 1 ;;
esac

# Is regcache up? Any HTTP answer (even 401) will do; 000 means nothing answered.
if command -v curl >/dev/null; then
  code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 3 "$SCHEME://127.0.0.1:$LISTEN_PORT/v2/" || true)
  if [[ $code == 000 ]]; then
    echo "k3d-cluster.sh: warning: nothing answers on $SCHEME://127.0.0.1:$LISTEN_PORT; start regcache:" >&2
    echo "  node dist/cli.js serve --config $CONFIG" >&2
  fi
fi

ENDPOINT="$SCHEME://host.k3d.internal:$LISTEN_PORT"
GEN_ARGS=(--config "$CONFIG" --format registries.yaml --endpoint "$ENDPOINT" --mode "$MODE" --default)
if [[ -n $CA_FILE ]]; then
  [[ -f $CA_FILE ]] || { echo "k3d-cluster.sh: --ca-file $CA_FILE not found" >&2; exit 1; }
  GEN_ARGS+=(--ca-file /etc/regcache/ca.pem)
  K3D_ARGS+=(--volume "$CA_FILE:/etc/regcache/ca.pem@all")
fi
if [[ -n $INSECURE ]]; then GEN_ARGS+=(--insecure-skip-verify); fi
if [[ -n $USERNAME ]]; then GEN_ARGS+=(--username "$USERNAME"); fi
if [[ -n $PASSWORD_FILE ]]; then GEN_ARGS+=(--password-file "$PASSWORD_FILE"); fi

# The file may hold a password: private, and removed once k3d has copied it into the nodes.
umask 077
WORK=$(mktemp -d "${TMPDIR:-/tmp}/regcache-k3d.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
REGISTRIES=$WORK/registries.yaml
node dist/cli.js containerd-config "${GEN_ARGS[@]}" > "$REGISTRIES"

echo "k3d-cluster.sh: registries.yaml for cluster $NAME (mode $MODE, endpoint $ENDPOINT):"
grep -v -e '^ *password:' "$REGISTRIES" | sed 's/^/  /'

k3d cluster create "$NAME" --registry-config "$REGISTRIES" "${K3D_ARGS[@]}"

cat <<EOF

Cluster $NAME pulls through regcache at $ENDPOINT. To verify:
  # the mirror config k3s wrote on a node (one directory per registry, _default for "*"):
  docker exec k3d-$NAME-server-0 cat /var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/hosts.toml
  # pull on a node, then look for the request in regcache's log (GET /v2/...?ns=docker.io):
  docker exec k3d-$NAME-server-0 crictl pull docker.io/library/alpine:3.20
  # or run a pod:
  kubectl --context k3d-$NAME run regcache-check --image=docker.io/library/busybox:1.36 --restart=Never -- true
  kubectl --context k3d-$NAME get pod regcache-check
  # which upstream is served where:
  node dist/cli.js mirror list --config $CONFIG
If pulls bypass regcache (containerd silently falls back to the registry itself), check
that regcache listens on 0.0.0.0:$LISTEN_PORT and that no firewall blocks the docker network,
and that the node resolves the name: docker exec k3d-$NAME-server-0 grep host.k3d.internal /etc/hosts
EOF
