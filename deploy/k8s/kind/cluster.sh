#!/usr/bin/env bash
# The kind path, end to end (make kind-up, kind-e2e, kind-down, kind-test):
#   cluster.sh up     engine, node image, images, cluster, helm install, helm test
#   cluster.sh e2e    tests/e2e against the release (deploy/k8s/kind-e2e.sh)
#   cluster.sh down   delete the cluster, stop the engine, check the host is as found
#   cluster.sh test   up, e2e, down, then one summary line
#   cluster.sh upgrade [--image-tag TAG] [helm args]
#                     helm upgrade --wait of the release with the values it
#                     has plus the arguments; --image-tag first tags the
#                     system's images TAG and loads them (the e2e upgrade
#                     scenarios use it)
# Every step says what failed in one line, and a failure tears down what the
# run made (cluster, kind network, engine): the pods' state is saved in
# $KIND_CACHE/diagnostics first. KIND_KEEP_ON_FAILURE=1 keeps a failed `up`'s
# cluster and engine to look into (`make kind-down` removes them).
. "$(dirname "$0")/lib.sh"

RUN_DIR=$KIND_CACHE/run
mkdir -p "$RUN_DIR"
kubectl() { "$KUBECTL" "$@"; }
cluster_exists() { kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; }

# -- up ----------------------------------------------------------------------
# Which start of the engine the cluster was created under ($ENGINE_DIR/generation,
# written by engine.sh start); empty on the public path, where the engine is
# the machine's.
engine_generation() { cat "$ENGINE_DIR/generation" 2>/dev/null || true; }

# A cluster is reused only if it was created under the engine running now and
# its API server answers within 60 s. A node container that lived through an
# engine stop (a run killed before `down`: the engine's data root keeps the
# container, and the engine restarts it) comes back with its pods Unknown and
# its API server unreachable; kind does not support restarting a node, so such
# a cluster is deleted and created again instead of failing `helm install`.
cluster_usable() {
  [[ $(engine_generation) == "$(cat "$RUN_DIR/cluster-generation" 2>/dev/null)" ]] || {
    log "cluster $CLUSTER was created under an earlier start of the engine"
    return 1
  }
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 || return 1
  local deadline=$((SECONDS + 60))
  until kubectl get --raw /readyz --request-timeout=5s >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { log "cluster $CLUSTER: API server not ready after 60 s"; return 1; }
    sleep 2
  done
}

create_cluster() {
  if cluster_exists; then
    if cluster_usable; then
      log "cluster $CLUSTER exists and answers: reused"
      return
    fi
    log "deleting cluster $CLUSTER to create it again"
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 || fail "kind delete cluster $CLUSTER"
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null; then
    fail "port $API_PORT taken: the cluster's API server needs it on 127.0.0.1 (deploy/k8s/kind-config.yaml)"
  fi
  local image=()
  [[ $KIND_IMAGES == public ]] || image=(--image "$(node_image)")
  log "creating cluster $CLUSTER"
  mkdir -p /lib/modules # kind mounts it into the node
  kind create cluster --name "$CLUSTER" "${image[@]}" --config "$REPO_ROOT/deploy/k8s/kind-config.yaml" \
    --kubeconfig "$KUBECONFIG" --wait 5m >"$RUN_DIR/kind-create.log" 2>&1 \
    || { tail -20 "$RUN_DIR/kind-create.log" >&2; fail "kind create cluster (log: $RUN_DIR/kind-create.log)"; }
  engine_generation >"$RUN_DIR/cluster-generation"
  if [[ $KIND_IMAGES == local ]]; then
    # Nothing leaves the machine: CoreDNS answers for the cluster only, without
    # forwarding other names to the host's resolver.
    kubectl -n kube-system get configmap coredns -o json | python3 -c '
import json, re, sys
cm = json.load(sys.stdin)
cm["data"]["Corefile"] = re.sub(r"\n\s*forward \. /etc/resolv\.conf\s*\{[^}]*\}", "", cm["data"]["Corefile"])
assert "forward" not in cm["data"]["Corefile"], "CoreDNS still forwards"
json.dump(cm, sys.stdout)' | kubectl replace -f - >/dev/null || fail "removing CoreDNS's upstream forward"
    kubectl -n kube-system rollout restart deployment coredns >/dev/null
  fi
  kubectl -n kube-system rollout status deployment coredns --timeout=180s >/dev/null || fail "CoreDNS not ready"
}

# Pods of the release that should run (completed Job pods excluded): "ready total".
pods() { kubectl -n "$NAMESPACE" get pods -o json | python3 "$KIND_DIR/pods.py" "$@"; }

# One line per pod that is not ready, with its containers' reasons; the full
# state, events and logs in $KIND_CACHE/diagnostics.
diagnose() {
  local dir=$KIND_CACHE/diagnostics
  rm -rf "$dir" && mkdir -p "$dir"
  kubectl -n "$NAMESPACE" get pods -o wide >"$dir/pods.txt" 2>&1 || true
  kubectl -n "$NAMESPACE" get events --sort-by=.lastTimestamp >"$dir/events.txt" 2>&1 || true
  kubectl -n "$NAMESPACE" describe pods >"$dir/describe.txt" 2>&1 || true
  for pod in $(kubectl -n "$NAMESPACE" get pods -o name 2>/dev/null); do
    kubectl -n "$NAMESPACE" logs "$pod" --all-containers --prefix --tail=200 >"$dir/${pod#pod/}.log" 2>&1 || true
  done
  pods unready >&2 || true
  log "pods, events, descriptions and logs in $dir"
}

up() {
  local started=$SECONDS
  bash "$KIND_DIR/engine.sh" start
  if [[ $KIND_IMAGES == local ]]; then
    bash "$KIND_DIR/build-kubernetes.sh"
    KUBECTL=$KUBE_BIN/kubectl
    bash "$KIND_DIR/node-image.sh"
  fi
  mapfile -t images < <(bash "$KIND_DIR/images.sh" build) || exit 1
  ((${#images[@]})) || fail "no image listed for the release"
  create_cluster
  log "loading ${#images[@]} images into the node"
  kind load docker-image --name "$CLUSTER" "${images[@]}" >"$RUN_DIR/kind-load.log" 2>&1 \
    || { tail -5 "$RUN_DIR/kind-load.log" >&2; fail "kind load docker-image (log: $RUN_DIR/kind-load.log)"; }
  # --wait with Helm's default timeout (5 min): every workload ready and the
  # provisioning Job complete. Provisioning is a regular Job, not a hook, so
  # nothing waits for something that runs only after the wait.
  log "helm upgrade --install $RELEASE --wait"
  helm upgrade --install "$RELEASE" "$REPO_ROOT/deploy/helm/reference-system" --namespace "$NAMESPACE" \
    --create-namespace "${HELM_VALUES[@]}" --wait >"$RUN_DIR/helm-install.log" 2>&1 \
    || { tail -5 "$RUN_DIR/helm-install.log" >&2; diagnose; fail "helm upgrade --install --wait (log: $RUN_DIR/helm-install.log)"; }
  read -r ready total < <(pods ready)
  ((ready == total)) || { diagnose; fail "pods ready: $ready of $total"; }
  local up_s=$((SECONDS - started))
  log "helm test $RELEASE"
  helm test "$RELEASE" --namespace "$NAMESPACE" --timeout 5m --logs >"$RUN_DIR/helm-test.log" 2>&1 \
    || { tail -20 "$RUN_DIR/helm-test.log" >&2; diagnose; fail "helm test (log: $RUN_DIR/helm-test.log)"; }
  log "memory: the node container uses $(node_memory) with the whole system running"
  printf 'kind_up_s=%s images=%s pods_ready=%s/%s helm_test=passed\n' "$up_s" "${#images[@]}" "$ready" "$total" \
    | tee "$RUN_DIR/up.txt"
}

# What the cluster (its node container: control plane, kubelet, every pod) uses.
node_memory() {
  $DOCKER stats --no-stream --format '{{.MemUsage}}' "$CLUSTER-control-plane" 2>/dev/null | cut -d/ -f1 | tr -d ' '
}

# -- e2e ---------------------------------------------------------------------
e2e() {
  cluster_exists || fail "no cluster $CLUSTER: run make kind-up first"
  PATH=$(dirname "$KUBECTL"):$PATH bash "$REPO_ROOT/deploy/k8s/kind-e2e.sh" "$@"
}

# -- upgrade -----------------------------------------------------------------
upgrade() {
  cluster_exists || fail "no cluster $CLUSTER: run make kind-up first"
  local images=() target
  if [[ ${1:-} == --image-tag ]]; then
    for target in $APP_IMAGES; do
      $DOCKER tag "reference/$target:$IMAGE_TAG" "reference/$target:$2" || fail "image reference/$target:$IMAGE_TAG missing"
      images+=("reference/$target:$2")
    done
    kind load docker-image --name "$CLUSTER" "${images[@]}" >"$RUN_DIR/kind-load-$2.log" 2>&1 \
      || fail "kind load of the $2 images (log: $RUN_DIR/kind-load-$2.log)"
    set -- --set "image.tag=$2" "${@:3}"
  fi
  # The values the release has, plus the arguments.
  helm upgrade "$RELEASE" "$REPO_ROOT/deploy/helm/reference-system" --namespace "$NAMESPACE" \
    --reuse-values "$@" --wait >"$RUN_DIR/helm-upgrade.log" 2>&1 \
    || { tail -5 "$RUN_DIR/helm-upgrade.log" >&2; fail "helm upgrade --wait (log: $RUN_DIR/helm-upgrade.log)"; }
}

# -- down --------------------------------------------------------------------
down() {
  if [[ $KIND_IMAGES == local ]] && ! bash "$KIND_DIR/engine.sh" status >/dev/null 2>&1; then
    log "engine not running: nothing to delete"
  else
    if cluster_exists; then
      log "deleting cluster $CLUSTER"
      kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 || fail "kind delete cluster $CLUSTER"
    fi
    # The kind network's bridge goes with the network.
    if [[ $KIND_IMAGES == local ]] && $DOCKER network inspect kind >/dev/null 2>&1; then
      $DOCKER network rm kind >/dev/null || fail "removing the kind network"
    fi
  fi
  bash "$KIND_DIR/engine.sh" stop
}

# make kind-up on its own: cleans up after a failure unless told to keep it.
up_alone() {
  if [[ ${KIND_KEEP_ON_FAILURE:-0} != 1 ]]; then
    trap 'rc=$?; ((rc == 0)) || { log "cleaning up after the failure (KIND_KEEP_ON_FAILURE=1 keeps it)"; down || true; }' EXIT
  fi
  up
  trap - EXIT
}

# -- test --------------------------------------------------------------------
test_all() {
  trap 'down || true' EXIT
  up
  local junit=$RUN_DIR/e2e.xml e2e_status=0
  e2e -q -p no:cacheprovider --junitxml="$junit" || e2e_status=$?
  local counts restarts_n
  counts=$(python3 "$KIND_DIR/pods.py" junit "$junit") || counts="0 0 0"
  read -r passed ran skipped <<<"$counts"
  # Container restarts of the release's pods present at the end (a scenario
  # that scales a workload to 0 starts it with new pods), each listed with how
  # its last run ended: the scenarios stop each relay once on purpose.
  restarts_n=$(pods restarts)
  [[ $skipped == 0 ]] || log "e2e: $skipped scenario(s) skipped on kind, each with its reason in its marker"
  trap - EXIT
  down
  echo "$(cat "$RUN_DIR/up.txt") e2e_passed=$passed/$ran restarts=$restarts_n"
  ((e2e_status == 0 && passed == ran && ran > 0)) || fail "e2e: $passed of $ran kind-capable scenarios passed"
}

case ${1:-} in
  up) up_alone ;;
  e2e) shift; e2e "$@" ;;
  down) down ;;
  test) test_all ;;
  upgrade) shift; upgrade "$@" ;;
  *) echo "usage: $0 up|e2e|down|test|upgrade" >&2; exit 2 ;;
esac
