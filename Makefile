# Gantry's developer entry points. `make run` and `make test` work on a fresh
# Debian 12 machine (as root): they install what they need and build the
# local Kubernetes 1.20 cluster from Debian's packages on first use.

CARGO ?= cargo
CLUSTER := e2e/cluster.sh
# The embedded cluster's kubeconfig; `make run KUBECONFIG=...` uses yours instead.
E2E_KUBECONFIG := $(shell $(CLUSTER) kubeconfig)

.PHONY: all run test test-faults lint unit e2e helm-venv cluster-up cluster-down cluster-status crds manifests-crds bench clean-cluster

all: test

## run: the operator in the foreground against $KUBECONFIG, or the embedded cluster when unset.
run:
ifeq ($(KUBECONFIG),)
	$(CLUSTER) up node
	$(MAKE) --no-print-directory _run KUBECONFIG=$(E2E_KUBECONFIG)
else
	$(MAKE) --no-print-directory _run
endif

_run:
	$(CARGO) build --bin gantry
	kubectl apply --server-side --field-manager=gantry -f crds/
	kubectl wait --for=condition=Established --timeout=60s -f crds/
	exec ./target/debug/gantry run

## test: format and lint checks, unit tests, then the tests on the real local cluster, then the
## fault tests.
test: lint unit e2e test-faults

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## unit: no cluster; tests/install_manifests.rs renders the Helm chart with Helm's own library
## (helm-venv).
unit: helm-venv
	$(CARGO) test --lib --bins --test crds --test install_manifests

## helm-venv: a Python venv with Helm's library (helm-python-sdk, pinned in
## e2e/helm-requirements.txt) for e2e/helm.py, in /var/cache/gantry/helm-venv; quick when made.
helm-venv:
	e2e/helm-venv.sh >/dev/null

## e2e: bring the local cluster up (node tier), build and import the operator image, run the
## cluster-backed tests, then the in-cluster install tests (kustomize and Helm, one at a time)
## and the bad-input corpus (alone: their operator watches every namespace).
e2e: cluster-up helm-venv
	e2e/operator-image.sh
	KUBECONFIG=$(E2E_KUBECONFIG) $(CARGO) test --test cluster -- --test-threads=6 --skip faults::
	KUBECONFIG=$(E2E_KUBECONFIG) $(CARGO) test --test install -- --test-threads=1
	KUBECONFIG=$(E2E_KUBECONFIG) $(CARGO) test --test bad_input -- --test-threads=1

## test-faults: the operator killed amid 50 pipelines, the API server and etcd restarted, Jobs
## and pods deleted, a stale status written back; alone, one at a time (they restart the cluster's parts).
test-faults: cluster-up
	KUBECONFIG=$(E2E_KUBECONFIG) $(CARGO) test --test cluster faults:: -- --test-threads=1

## bench: Gantry against a no-operator baseline on the control-plane tier (no kubelet; a
## job-completer marks stage pods Succeeded): `make bench N=100 S=5` (defaults 500 x 5).
## Writes target/bench/{bench.json,summary.txt,bench.png,gantry.log} and copies the plot to
## docs/bench.png. Leaves the cluster on the control-plane tier. See README "Performance".
N ?= 500
S ?= 5
BENCH_BIN := $(or $(CARGO_TARGET_DIR),target)/release
bench:
	test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || apt-get install -y -qq fonts-dejavu-core
	$(CLUSTER) down
	$(CLUSTER) up control-plane
	$(CARGO) build --release --features bench --bin gantry --bin gantry-bench
	KUBECONFIG=$(E2E_KUBECONFIG) kubectl apply --server-side --field-manager=gantry -f crds/
	KUBECONFIG=$(E2E_KUBECONFIG) kubectl wait --for=condition=Established --timeout=60s -f crds/
	KUBECONFIG=$(E2E_KUBECONFIG) $(BENCH_BIN)/gantry-bench --runs $(N) --stages $(S) --out target/bench
	cp target/bench/bench.png docs/bench.png

cluster-up:
	$(CLUSTER) up node

cluster-down:
	$(CLUSTER) down

cluster-status:
	$(CLUSTER) status

## crds: regenerate crds/ from src/api (a test fails when they drift), then their copies.
crds:
	$(CARGO) run --quiet --bin gantry -- crds --out-dir crds
	$(MAKE) --no-print-directory manifests-crds

## manifests-crds: copy crds/ into the kustomize base and the Helm chart (kustomize cannot
## load files outside manifests/; Helm installs only its chart's crds/). A test fails when
## the copies differ from crds/.
manifests-crds:
	rm -f manifests/base/crds/*.yaml charts/gantry/crds/*.yaml
	mkdir -p manifests/base/crds charts/gantry/crds
	cp crds/*.yaml manifests/base/crds/
	cp crds/*.yaml charts/gantry/crds/
