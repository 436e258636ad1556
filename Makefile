SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

include tools/versions.mk

TOOLS   := $(CURDIR)/.tools
BIN     := $(TOOLS)/bin
UV      := $(TOOLS)/uv-$(UV_VERSION)/bin/uv
export UV_PYTHON_DOWNLOADS := never
RUN     := $(UV) run --frozen
STACKCTL := $(RUN) stackctl
GOBUILD := CGO_ENABLED=0 go

##@ Help
.PHONY: help
help: ## List every target with what it does
	@awk 'BEGIN {FS = ":.*##"} /^##@/ {printf "\n%s\n", substr($$0, 5)} \
	  /^[a-zA-Z0-9_.-]+:.*##/ {printf "  %-24s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Set-up
.PHONY: system-deps tools venv
system-deps: ## Install the Debian packages the stack needs (apt as root; otherwise names them)
	@bash deploy/local/install-system-deps.sh

tools: system-deps venv $(BIN)/jaeger $(TOOLS)/kafka/libs $(TOOLS)/jmx_prometheus_javaagent.jar $(BIN)/helm $(BIN)/kube-score $(BIN)/kind $(BIN)/toxiproxy-server $(BIN)/mailpit $(ASYNCAPI_CLI) ## Install every pinned tool into .tools/ (reused when present)

venv: $(UV) ## Create .venv with every workspace package from uv.lock
	@$(UV) sync --frozen --all-packages --quiet

$(UV):
	python3 -m venv $(TOOLS)/uv-$(UV_VERSION)
	$(TOOLS)/uv-$(UV_VERSION)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Go tools: installed under .tools/<name>-<version>/ and linked into .tools/bin.
define go-tool
$(BIN)/$(1): $(TOOLS)/$(1)-$(3)/$(1)
	@mkdir -p $(BIN) && ln -sf $$< $$@
$(TOOLS)/$(1)-$(3)/$(1):
	@echo "building $(1) $(3) (first time only; takes a few minutes)"
	GOBIN=$(TOOLS)/$(1)-$(3) $(GOBUILD) install $(2)@$(3)
endef
$(eval $(call go-tool,helm,helm.sh/helm/v4/cmd/helm,$(HELM_VERSION)))
$(eval $(call go-tool,kube-score,github.com/zegl/kube-score/cmd/kube-score,$(KUBE_SCORE_VERSION)))
$(eval $(call go-tool,kind,sigs.k8s.io/kind,$(KIND_VERSION)))
$(eval $(call go-tool,mailpit,github.com/axllent/mailpit,$(MAILPIT_VERSION)))

$(BIN)/toxiproxy-server: $(TOOLS)/toxiproxy-server-$(TOXIPROXY_VERSION)/toxiproxy-server
	@mkdir -p $(BIN) && ln -sf $< $@
$(TOOLS)/toxiproxy-server-$(TOXIPROXY_VERSION)/toxiproxy-server:
	@echo "building toxiproxy $(TOXIPROXY_VERSION)"
	GOBIN=$(TOOLS)/toxiproxy-server-$(TOXIPROXY_VERSION) $(GOBUILD) install github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION)
	mv $(TOOLS)/toxiproxy-server-$(TOXIPROXY_VERSION)/server $@

$(BIN)/jaeger: $(TOOLS)/jaeger-$(JAEGER_VERSION)/jaeger
	@mkdir -p $(BIN) && ln -sf $< $@
$(TOOLS)/jaeger-$(JAEGER_VERSION)/jaeger: tools/jaeger/go.mod tools/jaeger/go.sum
	@echo "building jaeger (v2 all-in-one) from module $(JAEGER_VERSION) (first time only; takes minutes)"
	cd tools/jaeger && $(GOBUILD) build -trimpath -o $@ github.com/jaegertracing/jaeger/cmd/jaeger

# The AsyncAPI CLI from npm, pinned by tools/asyncapi/package-lock.json.
ASYNCAPI_CLI := $(TOOLS)/asyncapi/node_modules/.bin/asyncapi
$(ASYNCAPI_CLI): tools/asyncapi/package.json tools/asyncapi/package-lock.json
	mkdir -p $(TOOLS)/asyncapi && cp tools/asyncapi/package.json tools/asyncapi/package-lock.json $(TOOLS)/asyncapi/
	cd $(TOOLS)/asyncapi && npm ci --no-audit --no-fund --loglevel=error
	echo '{"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "none"}' > $(TOOLS)/asyncapi/analytics.json
	touch $@

$(TOOLS)/kafka/libs: $(TOOLS)/kafka-$(KAFKA_VERSION)/libs
	@ln -sfn $(TOOLS)/kafka-$(KAFKA_VERSION) $(TOOLS)/kafka
$(TOOLS)/kafka-$(KAFKA_VERSION)/libs: tools/kafka/pom.xml
	@echo "resolving Apache Kafka $(KAFKA_VERSION) jars"
	mvn -q -B -f tools/kafka/pom.xml -Dkafka.version=$(KAFKA_VERSION) \
	  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$@.tmp
	rm -rf $@ && mv $@.tmp $@

$(TOOLS)/jmx_prometheus_javaagent.jar: $(TOOLS)/jmx_prometheus_javaagent-$(JMX_EXPORTER_VERSION).jar
	@ln -sf $< $@
$(TOOLS)/jmx_prometheus_javaagent-$(JMX_EXPORTER_VERSION).jar:
	mvn -q -B -f tools/kafka/pom.xml dependency:copy \
	  -Dartifact=io.prometheus.jmx:jmx_prometheus_javaagent:$(JMX_EXPORTER_VERSION) -DoutputDirectory=$(TOOLS)

##@ Local stack (real PostgreSQL, RabbitMQ, Kafka, Prometheus, Jaeger under supervisord)
.PHONY: up down status clean
up: tools ## Start the whole system on loopback and wait until every component is ready
	@$(STACKCTL) up

down: ## Stop every component (data kept)
	@if [[ -x $(UV) ]]; then $(STACKCTL) down; else echo "stack already down"; fi

status: ## Show each component and whether it is ready
	@$(STACKCTL) status

clean: ## Stop everything and delete all local state (.stack/)
	@if [[ -x $(UV) ]]; then $(STACKCTL) clean; else rm -rf .stack; fi

SERVICE ?= order
.PHONY: relay-failures relay-redrive
relay-failures: ## List the outbox failure log of SERVICE (order or point)
	@$(STACKCTL) exec $(SERVICE)-relay -- $(CURDIR)/.venv/bin/outbox-relay failures list

relay-redrive: ## Re-drive every failed outbox message of SERVICE
	@$(STACKCTL) exec $(SERVICE)-relay -- $(CURDIR)/.venv/bin/outbox-relay failures retry --all

##@ Quality
# The services, as catalogue.services names them (read once .venv exists).
SERVICES = $(shell .venv/bin/python -m catalogue.services)
.PHONY: lint format typecheck asyncapi asyncapi-check
asyncapi: venv ## Regenerate docs/asyncapi/<service>.json from the services' code
	@mkdir -p docs/asyncapi
	@for s in $(SERVICES); do .venv/bin/$$s-service asyncapi > docs/asyncapi/$$s-service.json; done

asyncapi-check: venv $(ASYNCAPI_CLI) ## Committed AsyncAPI documents match the code and pass `asyncapi validate`
	@for s in $(SERVICES); do \
	  diff -u docs/asyncapi/$$s-service.json <(.venv/bin/$$s-service asyncapi 2>/dev/null) \
	    || { echo "docs/asyncapi/$$s-service.json is stale: run make asyncapi"; exit 1; }; \
	  ASYNCAPI_METRICS_CONFIG_PATH=$(TOOLS)/asyncapi/analytics.json SUPPRESS_NO_CONFIG_WARNING=1 \
	    $(ASYNCAPI_CLI) validate docs/asyncapi/$$s-service.json --fail-severity error >/dev/null \
	    || { echo "docs/asyncapi/$$s-service.json is not valid AsyncAPI"; exit 1; }; \
	done; echo "asyncapi: $(words $(SERVICES)) documents current and valid"

lint: venv ## ruff lint and format check
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

format: venv ## Apply ruff formatting and safe fixes
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

typecheck: venv ## mypy (strict) on the project's code
	@$(RUN) mypy

##@ Tests
.PHONY: test test-unit test-integration test-e2e test-fuzz
test: lint typecheck asyncapi-check observability-check charts-check test-unit up test-integration test-e2e test-fuzz verify-observability verify-live-feed ## The full suite: static checks, unit, integration, end-to-end, fuzzing, observability and the live page against the real local stack

test-unit: venv ## Unit tests (no stack needed)
	@$(RUN) pytest tests/unit

test-integration: ## Integration tests against the running local stack (make up first)
	@$(RUN) pytest tests/integration

E2E_TARGET ?= local
test-e2e: ## End-to-end scenarios against E2E_TARGET (local: the running stack; kind: see make kind-e2e)
	@E2E_TARGET=$(E2E_TARGET) $(RUN) pytest tests/e2e

test-fuzz: ## CI-sized fuzzing against the running stack: HTTP requests to order-service, malformed messages to every consumer
	@$(RUN) pytest tests/fuzz

.PHONY: verify-live-feed
verify-live-feed: up ## The live page in headless chromium: orders appear with points and mails; Redis stopped: orders still settle, notices dropped (SCREENSHOT=path keeps a copy)
	@E2E_TARGET=$(E2E_TARGET) $(RUN) python -m tests.e2e.live_feed $(if $(SCREENSHOT),--screenshot $(SCREENSHOT))

.PHONY: chaos fuzz demo
fuzz: up ## HTTP and message fuzzing, >= FUZZ_HTTP_CASES requests and FUZZ_MESSAGES messages (1000, 500; FUZZ_SEED=N to replay)
	@$(RUN) python -m tests.fuzz.run

demo: up ## Place a handful of orders (one cancelled, one whose mail fails once and is retried) and print where to look
	@$(RUN) python -m tests.e2e.demo

chaos: up ## Soak: 20,000 orders under a random fault schedule, then the invariant checker (SEED=N to replay)
	@E2E_TARGET=$(E2E_TARGET) $(RUN) python -m tests.e2e.chaos $(if $(SEED),--seed $(SEED))

##@ Benchmarks (outside CI; figures in bench/README.md)
.PHONY: bench bench-relay bench-brokers bench-floor
bench: up ## The whole system: API alone, orders/s it absorbs, CPU per order per process, latency (PROFILE=dir: py-spy profiles too)
	@E2E_TARGET=$(E2E_TARGET) $(RUN) python -m bench.system $(if $(PROFILE),--profile $(PROFILE))

bench-relay: up ## Relay vs plain aiokafka vs faststream-outbox on 50,000 rows, and latency at 500/s
	@$(RUN) python -m bench.relay

bench-brokers: up ## Kafka vs RabbitMQ vs Redis pub/sub on 100,000 messages: rates, broker CPU per message, what an away or slow consumer loses
	@$(RUN) python -m bench.brokers

bench-floor: up ## The frameworks alone (no-op handlers): CPU per message/request of FastStream, FastAPI, SQLAlchemy against raw clients
	@$(RUN) python -m bench.floor

.PHONY: deep-dive
deep-dive: up ## Print the evidence quoted in docs/deep-dive.md (consumer groups, consumers, STOMP, request/reply)
	@$(RUN) python -m bench.deep_dive

# Capabilities that keep their targets in their own file (charts, observability, ...).
-include mk/*.mk
