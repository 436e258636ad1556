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

# local port : component : port. Each component's Service sends that port to
# the same port of the component's pod (Kafka's external listener is
# advertised as localhost:31092, see kafka.externalPort).
FORWARDS=(
  "31800:order-service:8080"
  "31826:mailpit:8025"
  "31674:rabbitmq:15672"
  "31092:kafka:9094"
  "31090:prometheus:9090"
  "31686:jaeger:16686"
  "31432:postgresql:5432"
)
# A port-forward is bound to one pod, and `kubectl port-forward` does not exit
# when that pod is deleted: it stays, refusing every connection. The scenarios
# stop and kill pods (brokers, PostgreSQL, order-service), so each forward
# follows its component: forward to the running pod, wait until that pod is
# deleted or the forward ends, then start again with the next pod. Each loop
# runs in its own process group, so that the cleanup ends it with its kubectl.
follow() { # namespace selector local-port port
  while :; do
    pod=$(kubectl -n "$1" get pods -l "$2" --field-selector=status.phase=Running -o name 2>/dev/null | head -1)
    if [[ -z $pod ]]; then sleep 1; continue; fi
    kubectl -n "$1" port-forward "$pod" "$3:$4" >/dev/null 2>&1 &
    forward=$!
    kubectl -n "$1" wait --for=delete "$pod" --timeout=24h >/dev/null 2>&1 &
    deleted=$!
    wait -n "$forward" "$deleted" || true
    kill "$forward" "$deleted" 2>/dev/null || true
    wait "$forward" "$deleted" 2>/dev/null || true
    sleep 0.5
  done
}
export -f follow
GROUPS_=()
cleanup() { for g in "${GROUPS_[@]}"; do kill -- "-$g" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
for f in "${FORWARDS[@]}"; do
  IFS=: read -r local component port <<<"$f"
  setsid bash -c 'follow "$@"' forward "$NS" \
    "app.kubernetes.io/name=$component,app.kubernetes.io/instance=$RELEASE" "$local" "$port" &
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
for svc in $(.venv/bin/python -m catalogue.services); do  # the services, from catalogue.services
  # URL-encoded: a password from credentials.existingSecret may hold any character.
  password=$(secret "$svc-database-password" \
    | python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read(), safe=""))')
  export "E2E_${svc^^}_DATABASE_DSN=postgresql://$svc:$password@localhost:31432/$svc"
done
.venv/bin/pytest tests/e2e "$@"
