#!/usr/bin/env bash
# Installs the Debian packages the local stack runs (PostgreSQL 15, RabbitMQ,
# Prometheus, kcat, Redis), Chromium for the live page's browser test, and the
# toolchains `make tools` builds with (JDK 17, Maven, Go, Node). Idempotent: only what is missing is installed. As root it uses
# apt-get; otherwise it names the packages to install and exits non-zero.
set -euo pipefail

declare -A need=(
  [/usr/lib/postgresql/15/bin/postgres]=postgresql-15
  [/usr/lib/rabbitmq/bin/rabbitmq-server]=rabbitmq-server
  [/usr/bin/prometheus]=prometheus
  [/usr/bin/promtool]=prometheus
  [/usr/bin/kcat]=kcat
  [/usr/bin/redis-server]=redis-server
  [/usr/bin/chromium]=chromium
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
exec bash "$(dirname "$0")/../../tools/apt-install.sh" install-system-deps "${missing[@]}"
