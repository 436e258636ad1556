# Kubernetes: images, the Helm chart, and the kind path.
# Included by the top Makefile (-include mk/*.mk); uses its RUN, BIN and TOOLS.
# Only the images and kind-* targets need a container engine (they start their own).

CHART        := deploy/helm/reference-system
IMAGES       := order-service point-service notification-service outbox-relay live-feed

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

# The kind path (deploy/k8s/kind/): on a machine without a registry it starts
# its own container engine and builds everything (KIND_IMAGES=local, cached
# by version in ~/.cache/reference-system/kind); where Docker already runs it
# builds only the system's images (KIND_IMAGES=public). deploy/k8s/README.md.
KIND_SH := bash deploy/k8s/kind/cluster.sh
KIND_NEEDS := venv $(BIN)/kind $(BIN)/helm $(BIN)/jaeger $(BIN)/mailpit $(TOOLS)/kafka/libs

images: $(KIND_NEEDS) ## Build every image the chart's install needs (the engine of the kind path; see deploy/k8s/README.md)
	@bash deploy/k8s/kind/engine.sh start
	@bash deploy/k8s/kind/images.sh build

kind-up: $(KIND_NEEDS) ## Engine, node image, images, kind cluster, helm upgrade --install, helm test
	@$(KIND_SH) up

kind-e2e: venv ## The end-to-end suite against the kind release (port-forwards; E2E_TARGET=kind)
	@$(KIND_SH) e2e

kind-down: ## Delete the kind cluster and stop the engine kind-up started
	@$(KIND_SH) down

.PHONY: kind-test
kind-test: $(KIND_NEEDS) ## kind-up, helm test, kind-e2e, kind-down, then one summary line (what CI runs)
	@$(KIND_SH) test
