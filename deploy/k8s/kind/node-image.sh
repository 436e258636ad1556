#!/usr/bin/env bash
# The kind node image, assembled here because `kind build node-image` pulls
# images and kindest/node cannot be pulled:
#  1. Go builds, each cached by version in $KIND_CACHE: etcd, CoreDNS, crictl, the
#     local-path provisioner and kube-router (the Kubernetes binaries:
#     build-kubernetes.sh);
#     the pause binary from the pause.c of the Kubernetes module;
#  2. the node base (node/Dockerfile: Debian's containerd, kind's node files);
#  3. the control plane's images, FROM scratch (or Debian for kube-proxy) with
#     those binaries, under the names kubeadm asks for;
#  4. a node container with the Kubernetes binaries and those images imported
#     into its containerd, committed as $(node_image).
. "$(dirname "$0")/lib.sh"

NODE_IMAGE=$(node_image)
if $DOCKER image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  log "$NODE_IMAGE present"
  exit 0
fi
[[ -x $KUBE_BIN/kubeadm ]] || fail "kubernetes binaries missing: run build-kubernetes.sh first"
bash "$KIND_DIR/base-image.sh" # the node base and kube-proxy's image start from it
need_disk_gb 6 "the node image"
started=$SECONDS

# 1. Go builds -------------------------------------------------------------
go_install() { # name module version -> $KIND_CACHE/<name>-<version>/<name>
  local out=$KIND_CACHE/$1-$3
  [[ -x $out/$1 ]] && return
  log "building $1 $3 from its Go module"
  GOBIN=$out.tmp quietly "$1-build" "go install $2@$3" go install -trimpath -ldflags "-s -w" "$2@$3"
  rm -rf "$out" && mv "$out.tmp" "$out"
}
go_install coredns github.com/coredns/coredns "$COREDNS_VERSION"
go_install crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION"
go_install local-path-provisioner github.com/rancher/local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION"
go_install kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$KUBE_ROUTER_VERSION"

etcd=$KIND_CACHE/etcd-$ETCD_VERSION/etcd
if [[ ! -x $etcd ]]; then
  # The server module's go.mod replaces its sibling modules with ../ paths that
  # are not in its zip; the published modules of the same release are required
  # anyway, so the replaces are dropped.
  log "building etcd $ETCD_VERSION from its Go module"
  src=$KIND_CACHE/build/etcd-$ETCD_VERSION
  module=$(go_module_dir "go.etcd.io/etcd/server/v3@$ETCD_VERSION") || fail "cannot download go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  rm -rf "$src" && mkdir -p "$(dirname "$src")" && cp -r "$module" "$src" && chmod -R u+w "$src"
  python3 - "$src/go.mod" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r"replace \(\n(?:\s*go\.etcd\.io/etcd/[^\n]*=> \.\./[^\n]*\n)+\)\n", "", text)
text = re.sub(r"^replace go\.etcd\.io/etcd/\S+ => \.\./\S*\n", "", text, flags=re.M)
open(path, "w").write(text)
PY
  ! grep -q '=> \.\./' "$src/go.mod" || fail "etcd's go.mod still replaces into ../"
  (cd "$src" && quietly etcd-build "building etcd $ETCD_VERSION" go build -mod=mod -trimpath -ldflags "-s -w" -o "$etcd.tmp" .)
  mv "$etcd.tmp" "$etcd"
  rm -rf "$src"
fi

pause=$KIND_CACHE/pause-$KUBERNETES_VERSION/pause
if [[ ! -x $pause ]]; then
  k8s_module=$(go_module_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")
  mkdir -p "$(dirname "$pause")"
  gcc -Os -static -DVERSION="$KUBERNETES_VERSION" -o "$pause" "$k8s_module/build/pause/linux/pause.c" \
    || fail "compiling pause (gcc with a static libc is needed)"
fi

# 2. node base --------------------------------------------------------------
kind_module=$(go_module_dir "sigs.k8s.io/kind@$KIND_VERSION") || fail "cannot download sigs.k8s.io/kind@$KIND_VERSION"
context=$KIND_CACHE/build/node-context
rm -rf "$context" && mkdir -p "$context"
cp -r "$kind_module/images/base/files" "$context/files" && chmod -R u+w "$context"
cp "$KIND_DIR"/node/* "$context/"
sed -i "s/@KUBE_ROUTER_VERSION@/$KUBE_ROUTER_VERSION/" "$context/default-cni.yaml"
# kind's default storage (the local-path provisioner), from the kind module,
# with the images built here.
provisioner_image=localhost/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION
python3 - "$kind_module/pkg/build/nodeimage/const_storage.go" "$provisioner_image" "$DEBIAN_IMAGE" \
  >"$context/default-storage.yaml" <<'PY'
import sys
source, provisioner, helper = sys.argv[1:]
text = open(source).read()
marker = "const defaultStorageManifest = `"
body = text[text.index(marker) + len(marker):]
body = body.replace("` + storageProvisionerImage + `", provisioner).replace("` + storageHelperImage + `", helper)
body = body[: body.index("`\n")]
# The images are in the node already: never pulled.
print(body.replace("imagePullPolicy: IfNotPresent", "imagePullPolicy: Never"))
PY
grep -q "$provisioner_image" "$context/default-storage.yaml" || fail "kind's storage manifest not found in $KIND_VERSION"
base=localhost/kind-base:$DEBIAN_SUITE-${NODE_IMAGE##*-}
log "building the node base $base"
DOCKER_BUILDKIT=1 $DOCKER build -q --network host --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" -t "$base" "$context" >/dev/null \
  || fail "building the node base image (docker build $context)"

# 3. control-plane images ---------------------------------------------------
work=$KIND_CACHE/build/node-images
rm -rf "$work" && mkdir -p "$work"
image_from() { # tag base entrypoint-json src:dst...
  local tag=$1 from=$2 entrypoint=$3 dir
  shift 3
  dir=$work/$(echo "$tag" | tr '/:' '__')
  mkdir -p "$dir/root/tmp" && chmod 1777 "$dir/root/tmp"
  for pair in "$@"; do
    mkdir -p "$dir/root$(dirname "${pair#*:}")" && cp "${pair%%:*}" "$dir/root${pair#*:}"
  done
  {
    echo "FROM $from"
    # kube-proxy and kube-router program the node's iptables and ipsets.
    [[ $from == scratch ]] || echo 'RUN apt-get update && apt-get install -y --no-install-recommends iptables conntrack ipset kmod && rm -rf /var/lib/apt/lists/*'
    echo 'COPY root/ /'
    echo 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    [[ -z $entrypoint ]] || echo "ENTRYPOINT $entrypoint"
  } >"$dir/Dockerfile"
  DOCKER_BUILDKIT=1 $DOCKER build -q --network host -t "$tag" "$dir" >/dev/null || fail "building $tag"
}
mapfile -t wanted < <("$KUBE_BIN/kubeadm" config images list --kubernetes-version "$KUBERNETES_VERSION")
images=()
for image in "${wanted[@]}"; do
  name=${image%:*}
  case ${name##*/} in
    kube-apiserver | kube-controller-manager | kube-scheduler)
      image_from "$image" scratch "" "$KUBE_BIN/${name##*/}:/usr/local/bin/${name##*/}" ;;
    kube-proxy) image_from "$image" "$DEBIAN_IMAGE" "" "$KUBE_BIN/kube-proxy:/usr/local/bin/kube-proxy" ;;
    etcd)
      [[ ${image##*:} == "${ETCD_VERSION#v}"* ]] || log "note: kubeadm asks for $image, built etcd $ETCD_VERSION"
      image_from "$image" scratch "" "$etcd:/usr/local/bin/etcd" ;;
    coredns)
      [[ ${image##*:} == "$COREDNS_VERSION" ]] || log "note: kubeadm asks for $image, built coredns $COREDNS_VERSION"
      image_from "$image" scratch '["/coredns"]' "$KIND_CACHE/coredns-$COREDNS_VERSION/coredns:/coredns" ;;
    pause)
      image_from "$image" scratch '["/pause"]' "$pause:/pause"
      # The sandbox image kind's containerd configuration names.
      sandbox=$(grep -oP 'sandbox_image = "\K[^"]+' "$context/files/etc/containerd/config.toml")
      if [[ $sandbox != "$image" ]]; then $DOCKER tag "$image" "$sandbox" && images+=("$sandbox"); fi ;;
    *) fail "no recipe for the control-plane image $image" ;;
  esac
  images+=("$image")
done
image_from "$provisioner_image" scratch "" \
  "$KIND_CACHE/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION/local-path-provisioner:/usr/local/bin/local-path-provisioner"
image_from "localhost/kube-router:$KUBE_ROUTER_VERSION" "$DEBIAN_IMAGE" "" \
  "$KIND_CACHE/kube-router-$KUBE_ROUTER_VERSION/kube-router:/usr/local/bin/kube-router"
images+=("$provisioner_image" "localhost/kube-router:$KUBE_ROUTER_VERSION" "$DEBIAN_IMAGE")
$DOCKER save -o "$work/images.tar" "${images[@]}" || fail "docker save of the control-plane images"

# 4. the node image -----------------------------------------------------------
log "assembling $NODE_IMAGE"
# --init: a PID 1 that reaps, so that the stopped containerd does not linger.
container=$($DOCKER run -d --init --privileged --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --entrypoint=sleep "$base" infinity 2> >(grep -v 'IPv4 forwarding is disabled' >&2)) \
  || fail "cannot run the node base image"
trap '$DOCKER rm -f -v "$container" >/dev/null 2>&1 || true' EXIT
for b in kubeadm kubelet kubectl; do $DOCKER cp "$KUBE_BIN/$b" "$container:/usr/bin/$b"; done
$DOCKER cp "$KIND_CACHE/crictl-$CRICTL_VERSION/crictl" "$container:/usr/local/bin/crictl"
$DOCKER exec "$container" sh -c "printf %s $KUBERNETES_VERSION > /kind/version"
$DOCKER exec "$container" sh -c 'containerd >/tmp/containerd.log 2>&1 & echo $! >/tmp/containerd.pid'
for _ in $(seq 60); do $DOCKER exec "$container" ctr version >/dev/null 2>&1 && break; sleep 1; done
$DOCKER exec -i "$container" ctr -n k8s.io images import --all-platforms --no-unpack --digests - <"$work/images.tar" >/dev/null \
  || fail "importing the control-plane images into the node's containerd"
$DOCKER exec "$container" sh -c 'pid=$(cat /tmp/containerd.pid); kill $pid; for i in $(seq 150); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done; ! kill -0 $pid 2>/dev/null && rm -f /tmp/containerd.*' \
  || fail "the node's containerd did not stop within 30 s after the image import"
$DOCKER commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' "$container" "$NODE_IMAGE" >/dev/null \
  || fail "docker commit of the node image"
rm -rf "$work" "$context" "$GOCACHE"
# Node images and bases of earlier recipes only take disk.
$DOCKER images --format '{{.Repository}}:{{.Tag}}' | grep -E '^localhost/kind-(node|base):' \
  | grep -v -e "^$NODE_IMAGE\$" -e "^$base\$" | xargs -r $DOCKER rmi >/dev/null 2>&1 || true
log "$NODE_IMAGE built in $((SECONDS - started)) s"
