#!/usr/bin/env bash
# make kind-e2e: the end-to-end suite against the Helm release on kind.
# Opens port-forwards to the release's Services, reads the credentials from its
# Secret, and runs pytest tests/e2e with E2E_TARGET=kind. Needs kubectl, a
# cluster from `make kind-up`, and the project's .venv.
set -euo pipefail
NS=${NAMESPACE:-reference}
RELEASE=${RELEASE:-reference}
cd "$(dirname "$0")/../.."

secret() { kubectl -n "$NS" get secret "$RELEASE-credentials" -o "jsonpath={.data.$1}" | base64 -d; }

# local port : service : service port (Kafka's external listener is advertised
# as localhost:31092, see kafka.externalPort).
FORWARDS=(
  "31800:$RELEASE-order-service:8080"
  "31826:$RELEASE-mailpit:8025"
  "31674:$RELEASE-rabbitmq:15672"
  "31092:$RELEASE-kafka:9094"
  "31090:$RELEASE-prometheus:9090"
  "31686:$RELEASE-jaeger:16686"
  "31432:$RELEASE-postgresql:5432"
)
# A port-forward is bound to one pod and ends when that pod goes away, and the
# scenarios stop and kill pods (brokers, PostgreSQL, order-service): each
# forward runs in a loop that opens it again, in its own process group so that
# the cleanup ends the loop and its kubectl together.
GROUPS_=()
cleanup() { for g in "${GROUPS_[@]}"; do kill -- "-$g" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
for f in "${FORWARDS[@]}"; do
  IFS=: read -r local svc port <<<"$f"
  setsid bash -c 'while :; do kubectl -n "$1" port-forward "svc/$2" "$3:$4" >/dev/null 2>&1; sleep 1; done' \
    forward "$NS" "$svc" "$local" "$port" &
  GROUPS_+=($!)
done
for f in "${FORWARDS[@]}"; do
  IFS=: read -r local _ _ <<<"$f"
  for _ in $(seq 60); do (exec 3<>"/dev/tcp/127.0.0.1/$local") 2>/dev/null && break; sleep 1; done
  (exec 3<>"/dev/tcp/127.0.0.1/$local") 2>/dev/null || { echo "port-forward to $f never opened" >&2; exit 1; }
done

export E2E_TARGET=kind E2E_NAMESPACE="$NS" E2E_RELEASE="$RELEASE"
export E2E_ORDER_API=http://localhost:31800
export E2E_MAIL_API=http://localhost:31826
export E2E_RABBITMQ_MANAGEMENT=http://localhost:31674
export E2E_RABBITMQ_USER=admin
E2E_RABBITMQ_PASSWORD=$(secret rabbitmq-admin-password)
export E2E_RABBITMQ_PASSWORD
export E2E_KAFKA_BOOTSTRAP=localhost:31092
export E2E_PROMETHEUS=http://localhost:31090
export E2E_JAEGER_QUERY=http://localhost:31686
for svc in order point notification; do
  # URL-encoded: a password from credentials.existingSecret may hold any character.
  password=$(secret "$svc-database-password" \
    | python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read(), safe=""))')
  export "E2E_${svc^^}_DATABASE_DSN=postgresql://$svc:$password@localhost:31432/$svc"
done
.venv/bin/pytest tests/e2e "$@"
