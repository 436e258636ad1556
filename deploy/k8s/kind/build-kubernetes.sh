#!/usr/bin/env bash
# The Kubernetes binaries a kind node needs, compiled from the k8s.io/kubernetes
# Go module (no release download is reachable here). The module's zip lacks
# ./staging, so its replace directives are pointed at the published k8s.io/*
# modules of the same release. Cached in $KIND_CACHE/kubernetes-<version>/bin.
. "$(dirname "$0")/lib.sh"

COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)
missing=0
for c in "${COMMANDS[@]}"; do [[ -x $KUBE_BIN/$c ]] || missing=1; done
((missing)) || { log "kubernetes $KUBERNETES_VERSION binaries cached"; exit 0; }

need_disk_gb 12 "compiling Kubernetes"
log "compiling kubernetes $KUBERNETES_VERSION (${COMMANDS[*]}; first time only: 6-8 min on 2 cores)"
started=$SECONDS
src=$KIND_CACHE/build/kubernetes-$KUBERNETES_VERSION
module=$(go_module_dir "k8s.io/kubernetes@$KUBERNETES_VERSION") || fail "cannot download module k8s.io/kubernetes@$KUBERNETES_VERSION"
rm -rf "$src" && mkdir -p "$(dirname "$src")" && cp -r "$module" "$src" && chmod -R u+w "$src"
cd "$src"
rm -rf go.work go.work.sum vendor
staging=v0.${KUBERNETES_VERSION#v1.} # v1.34.4 -> v0.34.4
sed -E -i "s#^(\s*)(k8s\.io/[A-Za-z0-9._/-]+) => \./staging/src/k8s\.io/[A-Za-z0-9._/-]+#\1\2 => \2 $staging#" go.mod
! grep -q '=> ./staging' go.mod || fail "go.mod of kubernetes $KUBERNETES_VERSION still replaces into ./staging"

minor=${KUBERNETES_VERSION#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
packages=()
for c in "${COMMANDS[@]}"; do packages+=("./cmd/$c"); done
mkdir -p "$KUBE_BIN.tmp"
quietly kubernetes-build "compiling kubernetes $KUBERNETES_VERSION" \
  go build -mod=mod -trimpath -ldflags "$ldflags" -o "$KUBE_BIN.tmp/" "${packages[@]}"
rm -rf "$KUBE_BIN" && mv "$KUBE_BIN.tmp" "$KUBE_BIN"
cd / && rm -rf "$src" "$GOCACHE"
log "kubernetes $KUBERNETES_VERSION compiled in $((SECONDS - started)) s"
