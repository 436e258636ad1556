# Kubernetes: images, the Helm chart, and the kind path.
# Included by the top Makefile (-include mk/*.mk); uses its RUN, BIN and E2E_TARGET.
# Nothing here needs a container engine except kind-up (docker builds and kind).

CHART        := deploy/helm/reference-system
KIND_CLUSTER := reference
K8S_NS       := reference
RELEASE      := reference
IMAGE_TAG    ?= dev
IMAGES       := order-service point-service notification-service outbox-relay

# The prometheus-operator's CRDs, to validate the chart's PodMonitor and
# PrometheusRule offline: taken from the operator's Go module (pinned in
# tools/versions.mk), fetched once like the other tools.
CRDS := $(TOOLS)/prometheus-operator-crds-$(PROMETHEUS_OPERATOR_VERSION)
CRD_FILES := monitoring.coreos.com_podmonitors.yaml monitoring.coreos.com_prometheusrules.yaml
$(CRDS)/.fetched:
	@echo "fetching the prometheus-operator $(PROMETHEUS_OPERATOR_VERSION) CRDs (Go module)"
	@dir=$$(cd /tmp && GOFLAGS=-mod=mod go mod download -json \
	    github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION) \
	  | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') \
	  && mkdir -p $(CRDS) \
	  && for f in $(CRD_FILES); do cp "$$dir/example/prometheus-operator-crd/$$f" $(CRDS)/; done \
	  && touch $@

# `make tools` fetches them with the other pinned tools.
tools: $(CRDS)/.fetched

##@ Kubernetes (Helm chart, kind)
.PHONY: charts-check charts-golden charts-sync images kind-up kind-e2e kind-down
charts-check: venv system-deps $(BIN)/helm $(BIN)/kube-score $(CRDS)/.fetched ## Offline: helm lint/template, schemas, kube-score, goldens, wiring tests
	@PATH=$(BIN):$$PATH $(RUN) pytest -q tests/charts
	@PATH=$(BIN):$$PATH $(RUN) python deploy/helm/check.py --crds $(CRDS)

charts-golden: venv $(BIN)/helm $(CRDS)/.fetched ## Rewrite deploy/helm/golden/ from the chart (review the diff)
	@PATH=$(BIN):$$PATH $(RUN) python deploy/helm/check.py --crds $(CRDS) --update-golden

charts-sync: ## Copy deploy/observability's dashboards and rules into the chart
	@cp deploy/observability/dashboards/*.json $(CHART)/files/dashboards/
	@cp deploy/observability/rules/*.yml $(CHART)/files/rules/

images: ## Build the images (docker) from deploy/docker/Dockerfile, one target per process
	@for t in $(IMAGES); do \
	  docker build -f deploy/docker/Dockerfile --target $$t -t reference/$$t:$(IMAGE_TAG) . ; \
	done

kind-up: $(BIN)/kind $(BIN)/helm images ## Create the kind cluster, load the images, install the chart, run helm test
	@$(BIN)/kind get clusters | grep -qx $(KIND_CLUSTER) \
	  || $(BIN)/kind create cluster --config deploy/k8s/kind-config.yaml
	@for t in $(IMAGES); do $(BIN)/kind load docker-image reference/$$t:$(IMAGE_TAG) --name $(KIND_CLUSTER); done
	@# No --wait: the services wait for the post-install provisioning hook (deploy/k8s/README.md).
	@$(BIN)/helm upgrade --install $(RELEASE) $(CHART) --namespace $(K8S_NS) --create-namespace \
	  --set images.tag=$(IMAGE_TAG) --set images.pullPolicy=Never --timeout 15m
	@for d in order-service point-service notification-service; do \
	  kubectl -n $(K8S_NS) rollout status deployment/$(RELEASE)-$$d --timeout=10m; done
	@$(BIN)/helm test $(RELEASE) --namespace $(K8S_NS) --timeout 5m

kind-e2e: venv ## The end-to-end suite against the kind release (port-forwards; E2E_TARGET=kind)
	@bash deploy/k8s/kind-e2e.sh

kind-down: $(BIN)/kind ## Delete the kind cluster
	@$(BIN)/kind delete cluster --name $(KIND_CLUSTER)
