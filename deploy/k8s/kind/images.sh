#!/usr/bin/env bash
# Builds every image the release will run (the chart rendered with the values
# cluster.sh installs it with), from the sources the local stack uses, and
# checks that each is in the engine. Each build is a `docker build` whose layer
# cache makes it a few seconds when nothing changed.
#   images.sh build   build them; print the list
#   images.sh list    print the images the release names (helm template)
#
# KIND_IMAGES=local (this machine: no registry): the apps (the three services,
# the outbox relay, the live feed) on a Python base made from debootstrapped
# Debian, and Kafka, RabbitMQ, PostgreSQL, Redis, Prometheus, Jaeger and
# Mailpit as deploy/docker/<name>/ describes (Kafka's jars from Maven Central,
# Debian's packages, the Go builds of `make tools`); the release uses
# deploy/helm/values-local-images.yaml.
# KIND_IMAGES=public (a machine with a registry): the apps only, on the public
# Python image; the infrastructure comes from its public images.
. "$(dirname "$0")/lib.sh"

CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
build() { # tag context [docker build args...]
  local tag=$1 context=$2
  shift 2
  local secret=()
  [[ -r $CA_BUNDLE ]] && secret=(--secret "id=ca-certificates,src=$CA_BUNDLE")
  local started=$SECONDS
  DOCKER_BUILDKIT=1 $DOCKER build --network host --progress plain "${secret[@]}" -t "$tag" "$@" "$context" \
    >"$KIND_CACHE/build/image-${tag//[\/:]/_}.log" 2>&1 \
    || { tail -15 "$KIND_CACHE/build/image-${tag//[\/:]/_}.log" >&2; fail "image $tag does not build (log: $KIND_CACHE/build/image-${tag//[\/:]/_}.log)"; }
  log "image $tag ($((SECONDS - started)) s)"
}

# A build context of deploy/docker/<name>/ plus artifacts (hard links when the
# cache and the checkout share a filesystem).
context() { # name artifact:dest...
  local dir=$KIND_CACHE/build/context-$1
  rm -rf "$dir" && mkdir -p "$dir" && cp -r "$REPO_ROOT/deploy/docker/$1/." "$dir/"
  shift
  for pair in "$@"; do
    local src=${pair%%:*} dest=$dir/${pair#*:}
    [[ -e $src ]] || fail "image input $src missing: run make tools"
    cp -al "$src" "$dest" 2>/dev/null || cp -r "$src" "$dest"
  done
  echo "$dir"
}

# The build of one image the release names: the system's own (APP_IMAGES, the
# targets of deploy/docker/Dockerfile) from that Dockerfile, an infrastructure
# image reference/<component>:<tag> (the values file names it) from
# deploy/docker/<component>/ with what it takes from `make tools` (RabbitMQ,
# PostgreSQL, Redis and Prometheus: only Debian's packages). Anything else is a
# public image (KIND_IMAGES=public).
build_image() {
  local image=$1 repository=${1%:*} name=${1%:*}
  name=${name#reference/}
  [[ $repository == reference/* ]] || return 0
  if [[ " $APP_IMAGES " == *" $name "* ]]; then
    build "$image" "$REPO_ROOT" -f "$REPO_ROOT/deploy/docker/Dockerfile" --target "$name" "${PYTHON_ARGS[@]}"
    return
  fi
  [[ -f $REPO_ROOT/deploy/docker/$name/Dockerfile ]] || fail "image missing: no deploy/docker/$name/Dockerfile builds $image"
  local tools=$REPO_ROOT/.tools artifacts=()
  case $name in
    kafka) artifacts=("$tools/kafka-$KAFKA_VERSION/libs:libs") ;;
    jaeger) artifacts=("$tools/jaeger-$JAEGER_VERSION/jaeger:jaeger") ;;
    mailpit) artifacts=("$tools/mailpit-$MAILPIT_VERSION/mailpit:mailpit") ;;
  esac
  build "$image" "$(context "$name" "${artifacts[@]}")" --build-arg "BASE_IMAGE=$DEBIAN_IMAGE"
}

build_all() {
  mkdir -p "$KIND_CACHE/build"
  need_disk_gb 4 "the images"
  PYTHON_ARGS=()
  if [[ $KIND_IMAGES == local ]]; then
    bash "$KIND_DIR/base-image.sh"
    local python=localhost/python:3.11-$DEBIAN_SUITE
    build "$python" "$REPO_ROOT/deploy/docker/python" --build-arg "BASE_IMAGE=$DEBIAN_IMAGE"
    PYTHON_ARGS=(--build-arg "PYTHON_IMAGE=$python")
  fi
  local image
  for image in $(release_images); do build_image "$image"; done
  rm -rf "$KIND_CACHE"/build/context-*
  # Earlier builds of the system's images (other digests) only take disk.
  for target in $APP_IMAGES; do
    $DOCKER images --format '{{.Repository}}:{{.Tag}}' "reference/$target" | grep -v ":$IMAGE_TAG\$" \
      | xargs -r $DOCKER rmi >/dev/null 2>&1 || true
  done
}

# Every image the release names, from the chart rendered with the values
# cluster.sh installs it with; each must be in the engine.
release_images() {
  "$BIN/helm" template "$RELEASE" "$REPO_ROOT/deploy/helm/reference-system" --namespace "$NAMESPACE" \
    "${HELM_VALUES[@]}" | sed -nE 's/^\s*image:\s*"?([^" ]+)"?\s*$/\1/p' | sort -u
}

case ${1:-} in
  build)
    build_all
    missing=()
    while read -r image; do
      $DOCKER image inspect "$image" >/dev/null 2>&1 || missing+=("$image")
    done < <(release_images)
    ((${#missing[@]} == 0)) || fail "image missing: ${missing[*]} (named by the chart, not in the engine)"
    release_images
    ;;
  list) release_images ;;
  *) echo "usage: $0 build|list" >&2; exit 2 ;;
esac
