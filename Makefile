# resolverd — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# The race detector makes the suite slower but finds what matters in a concurrent server.
TESTFLAGS ?= -race -count=1 -timeout 15m

# Code generators and grpcurl, pinned in tools/go.mod and built from the Go module proxy.
TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/grpcurl $(BIN)/grpc-health-probe
TOOL_PKG_buf                := github.com/bufbuild/buf/cmd/buf
TOOL_PKG_protoc-gen-go      := google.golang.org/protobuf/cmd/protoc-gen-go
TOOL_PKG_protoc-gen-go-grpc := google.golang.org/grpc/cmd/protoc-gen-go-grpc
TOOL_PKG_grpcurl            := github.com/fullstorydev/grpcurl/cmd/grpcurl
TOOL_PKG_grpc-health-probe  := github.com/grpc-ecosystem/grpc-health-probe

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: run
run: build $(BIN)/grpcurl ## run a zero-setup local resolverd (private PostgreSQL, demo data) on 127.0.0.1:50051
	$(BIN)/resolverd dev

.PHONY: test
test: tidy-check check-generated check-breaking vet $(BIN)/grpcurl $(BIN)/grpc-health-probe ## run every test (race detector on) after checking go.mod, generated code, API compatibility and vet
	RESOLVER_GRPCURL=$(CURDIR)/$(BIN)/grpcurl RESOLVER_GRPC_HEALTH_PROBE=$(CURDIR)/$(BIN)/grpc-health-probe \
		$(GO) test $(TESTFLAGS) ./...
	@# go test hides skips without -v: say when the Node.js example worker was not tested.
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
		echo "node-worker: skipped (node not installed)"; \
	elif ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then \
		echo "node-worker: skipped (node $$(node --version) is older than 20)"; \
	fi
	cd deploy/validate && $(GO) test -count=1 ./...
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz-short.sh

# A short fuzz of every target inside make test, counted in executions: a short -fuzztime in
# seconds can end while the workers still gather coverage, which go test reports as a failure
# ("context deadline exceeded"). Longer runs: make fuzz FUZZTIME=5m.
FUZZTIME ?= 2000x

.PHONY: fuzz
fuzz: ## fuzz every target for FUZZTIME each (default 2000 executions; try FUZZTIME=1m)
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz-short.sh

.PHONY: bench
bench: ## self-contained benchmark: private PostgreSQL, seeded data, 3 replicas, load; prints the figures of docs/BENCHMARKS.md
	$(GO) run ./cmd/resolverd-bench $(BENCHFLAGS)

.PHONY: soak
soak: ## hold a steady ResolveModel rate for 10 minutes and report errors, latency and memory per minute
	$(GO) run ./cmd/resolverd-bench -soak 10m -replicas 1 $(SOAKFLAGS)

.PHONY: build
build: ## build bin/resolverd
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/resolverd ./cmd/resolverd

.PHONY: vet
vet: ## gofmt and go vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...

.PHONY: tidy-check
tidy-check: ## fail if `go mod tidy` would change go.mod or go.sum of the module, tools/ or deploy/validate/
	@status=0; for dir in . tools deploy/validate; do \
		if ! out=$$(cd "$$dir" && $(GO) mod tidy -diff 2>&1); then \
			echo "$$out"; \
			echo "tidy-check: 'go mod tidy' would change $$dir/go.mod or $$dir/go.sum (diff above): run 'cd $$dir && go mod tidy' and commit the result"; \
			status=1; \
		fi; \
	done; \
	[ $$status -eq 0 ] && echo "tidy-check: go.mod and go.sum are tidy in . tools deploy/validate"; exit $$status

.PHONY: generate
generate: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## regenerate the Go code from proto/
	$(BIN)/buf lint
	$(BIN)/buf generate

.PHONY: check-generated
check-generated: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## fail if proto/ lints dirty or regeneration would change the committed Go code
	$(BIN)/buf lint
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BIN)/buf generate -o "$$tmp"; \
	if ! diff -r --exclude='*.proto' "$$tmp/proto" proto; then \
		echo "generated code is stale: run 'make generate' and commit the result"; exit 1; fi

.PHONY: check-breaking
check-breaking: $(BIN)/buf ## fail if proto/ breaks compatibility with the last release (or the first commit) without announcing it
	BUF=$(BIN)/buf bash scripts/check-breaking.sh

.PHONY: tools
tools: $(TOOLS) ## build the pinned tools into bin/

$(BIN)/%: tools/go.mod tools/go.sum
	@mkdir -p $(BIN)
	cd tools && $(GO) build -o ../$@ $(TOOL_PKG_$*)

.PHONY: clean
clean: ## remove bin/ (not the dev data in .resolverd/)
	rm -rf $(BIN)
