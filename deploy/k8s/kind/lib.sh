# Sourced by every script of the kind path (deploy/k8s/kind/). Where things
# live, the pinned versions, and the one-line failure every step reports.
#
# All build products, caches and the private container engine's state live in
# KIND_CACHE, outside the checkout, so that a fresh clone reuses them; each
# product's path or tag names its version, so a version bump builds anew.
set -euo pipefail

KIND_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$KIND_DIR/../../.." && pwd)
: "${KIND_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/reference-system/kind}"
export KIND_CACHE

# The pinned versions, read from tools/versions.mk (make exports them too).
while IFS= read -r line; do
  [[ $line =~ ^([A-Z_]+)[[:space:]]*:=[[:space:]]*([^[:space:]#]+) ]] || continue
  [[ -n ${!BASH_REMATCH[1]:-} ]] || export "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
done <"$REPO_ROOT/tools/versions.mk"

log() { printf '%s kind: %s\n' "$(date +%T)" "$*" >&2; }
# One line that says what failed, then a non-zero exit.
fail() {
  printf 'kind: FAILED: %s\n' "$*" >&2
  exit 1
}

# Which images: `local` builds every one here (no registry: this machine),
# `public` builds only the system's own and lets kind's node image and the
# infrastructure come from their public images. Default: public when a Docker
# engine already answers on its usual socket (a developer's machine), local
# otherwise.
if [[ -z ${KIND_IMAGES:-} ]]; then
  KIND_IMAGES=local
  if [[ -S /var/run/docker.sock ]] && docker -H unix:///var/run/docker.sock info >/dev/null 2>&1; then
    KIND_IMAGES=public
  fi
fi
[[ $KIND_IMAGES == local || $KIND_IMAGES == public ]] || fail "KIND_IMAGES is local or public, not '$KIND_IMAGES'"
export KIND_IMAGES

ENGINE_DIR=$KIND_CACHE/engine
if [[ $KIND_IMAGES == local ]]; then
  # The project's own engine (engine.sh) and Debian's docker client, whose
  # built-in BuildKit needs no buildx plugin.
  export DOCKER_HOST=unix://$ENGINE_DIR/docker.sock
  DOCKER=/usr/bin/docker
else
  DOCKER=docker
fi
export KUBECONFIG=$KIND_CACHE/kubeconfig
BIN=$REPO_ROOT/.tools/bin
KUBE_BIN=$KIND_CACHE/kubernetes-$KUBERNETES_VERSION/bin
DEBIAN_IMAGE=localhost/debian:$DEBIAN_SUITE
CLUSTER=${KIND_CLUSTER:-reference}
NAMESPACE=${K8S_NS:-reference}
RELEASE=${RELEASE:-reference}
API_PORT=16443
# The system's images are tagged by a digest of what they are built from, so
# that `make kind-up` after a change rolls the new images out (a reused tag
# would leave the running pods on the old ones).
if [[ -z ${IMAGE_TAG:-} ]]; then
  IMAGE_TAG=dev-$(cd "$REPO_ROOT" && git ls-files -co --exclude-standard -z -- services deploy/docker/Dockerfile \
    deploy/docker/python pyproject.toml uv.lock deploy/local/pyproject.toml | sort -z | xargs -0 cat | sha256sum | cut -c1-12)
fi
# The system's own images: the targets of deploy/docker/Dockerfile, listed once
# in mk/charts.mk (order-service, point-service, notification-service,
# outbox-relay, live-feed; tests/charts/test_images.py checks the two agree).
: "${APP_IMAGES:=$(sed -nE 's/^IMAGES[[:space:]]*:=[[:space:]]*(.*)$/\1/p' "$REPO_ROOT/mk/charts.mk")}"
# What the release is installed with.
HELM_VALUES=(--set "image.tag=$IMAGE_TAG" --set image.pullPolicy=Never)
[[ $KIND_IMAGES == public ]] || HELM_VALUES=(-f "$REPO_ROOT/deploy/helm/values-local-images.yaml" "${HELM_VALUES[@]}")
# kubectl: the one built with the node's Kubernetes (local), else the PATH's.
if [[ -x $KUBE_BIN/kubectl ]]; then KUBECTL=$KUBE_BIN/kubectl; else KUBECTL=kubectl; fi
export PATH=$BIN:$PATH

# Go builds of this path: their own build cache (several GB for Kubernetes,
# removed once the binaries exist), the shared module cache, no toolchain
# download, static binaries.
export GOCACHE=$KIND_CACHE/go-build GOFLAGS=-buildvcs=false GOTOOLCHAIN=local CGO_ENABLED=0

# Runs a long command with its output in $KIND_CACHE/logs/<name>.log; on a
# failure, its last lines and the one-line reason.
quietly() { # name reason command...
  local name=$1 reason=$2
  shift 2
  mkdir -p "$KIND_CACHE/logs"
  "$@" >"$KIND_CACHE/logs/$name.log" 2>&1 && return
  tail -15 "$KIND_CACHE/logs/$name.log" >&2
  fail "$reason (log: $KIND_CACHE/logs/$name.log)"
}

# The directory of a Go module at a version, downloaded through the module proxy.
go_module_dir() {
  go mod download -json "$1" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error", "no Dir")))'
}

# Fails early, with the figure, when the disk cannot hold a build.
need_disk_gb() {
  local free
  mkdir -p "$KIND_CACHE"
  free=$(df -P --block-size=1G "$KIND_CACHE" | awk 'NR == 2 {print $4}')
  ((free >= $1)) || fail "disk full: $free GB free under $KIND_CACHE, $2 needs about $1 GB"
}

# The node image's tag: the Kubernetes version and a digest of its recipe, so
# that a change to the recipe or to a pinned version builds a new one.
node_image() {
  local digest
  digest=$(cat "$KIND_DIR/node-image.sh" "$KIND_DIR"/node/* \
    <(echo "$KUBERNETES_VERSION $ETCD_VERSION $COREDNS_VERSION $CRICTL_VERSION $LOCAL_PATH_PROVISIONER_VERSION" \
      "$KUBE_ROUTER_VERSION $KIND_VERSION $DEBIAN_SUITE") \
    | sha256sum | cut -c1-12)
  echo "localhost/kind-node:$KUBERNETES_VERSION-$digest"
}
