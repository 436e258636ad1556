#!/usr/bin/env bash
# Installs the Debian packages the local stack runs (PostgreSQL 15, RabbitMQ,
# Prometheus, kcat) and the toolchains `make tools` builds with (JDK 17, Maven,
# Go, Node). Idempotent: only what is missing is installed. As root it uses
# apt-get; otherwise it names the packages to install and exits non-zero.
set -euo pipefail

declare -A need=(
  [/usr/lib/postgresql/15/bin/postgres]=postgresql-15
  [/usr/lib/rabbitmq/bin/rabbitmq-server]=rabbitmq-server
  [/usr/bin/prometheus]=prometheus
  [/usr/bin/promtool]=prometheus
  [/usr/bin/kcat]=kcat
  [java]=openjdk-17-jre-headless
  [mvn]=maven
  [node]=nodejs
  [npm]=npm
)
missing=()
for program in "${!need[@]}"; do
  command -v "$program" >/dev/null 2>&1 || [[ -x "$program" ]] || missing+=("${need[$program]}")
done
if ! command -v go >/dev/null 2>&1; then
  echo "install-system-deps: Go >= 1.24 is required to build helm, jaeger and friends (not found on PATH)" >&2
  exit 1
fi
if ((${#missing[@]} == 0)); then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [[ $(id -u) -ne 0 ]]; then
  echo "install-system-deps: missing Debian packages: ${missing[*]}" >&2
  echo "  install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "install-system-deps: installing ${missing[*]}"
# Packages must not start their system-wide services (a second RabbitMQ on
# 5672, Prometheus on 9090): the stack runs its own private instances.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '((created_policy)) && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
