# Observability: dashboards built from code, alert rules with their unit tests,
# and the check of both (and of one order's trace) against the real backends.
# Included by the top Makefile (-include mk/*.mk); uses its RUN and E2E_TARGET.

OBSERVABILITY := deploy/observability

##@ Observability (dashboards, alert rules, traces)
.PHONY: dashboards observability-check verify-observability test-observability
dashboards: venv ## Regenerate deploy/observability/dashboards/*.json from dashboards.py
	@$(RUN) python $(OBSERVABILITY)/dashboards.py

observability-check: venv system-deps ## Offline: alert rules valid and unit-tested (promtool), dashboards JSON current
	@promtool check rules $(OBSERVABILITY)/rules/*.yml >/dev/null
	@promtool test rules $(OBSERVABILITY)/rules/tests/*.yml
	@$(RUN) python $(OBSERVABILITY)/dashboards.py --check

verify-observability: up ## Drive traffic; every panel has data, every alert rule loads, one order = one trace
	@E2E_TARGET=$(E2E_TARGET) $(RUN) python -m tests.observability.verify

test-observability: ## Only the observability integration tests (the stack must be up)
	@$(RUN) pytest tests/integration/test_observability.py
