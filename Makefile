# Coffer build and test entry points. `make test` is what CI runs.
GO        ?= go
# Go 1.27.3: the release with the standard-library security fixes govulncheck
# asks for, fetched by the go command through the module proxy on first use.
export GOTOOLCHAIN := go1.27.3
BIN       := bin
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

.PHONY: build test vet fmt-check vulncheck unit fuzz-short fuzz bench faults clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/coffer ./cmd/coffer
	$(GO) build -trimpath -buildmode=c-shared -o $(BIN)/libcoffer_pkcs11.so ./cmd/libcoffer_pkcs11

test: build vet fmt-check vulncheck unit fuzz-short

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vulncheck:
	bash scripts/vulncheck.sh

# go test's output as it is, then the packages' times, slowest first. The
# tests that run coffer or load the PKCS#11 library take build's rather
# than building their own.
unit: build
	COFFER_BIN=$(abspath $(BIN)/coffer) COFFER_LIB=$(abspath $(BIN)/libcoffer_pkcs11.so) \
		GO=$(GO) bash scripts/gotest.sh -race -count=1 -timeout 20m ./...

# Every fuzz target explores for a few seconds in `make test`; `make fuzz`
# runs each longer (FUZZTIME=10m make fuzz).
FUZZTIME ?= 2m
fuzz-short:
	bash scripts/fuzz.sh 4s

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

# The fault harness's long form: HSMs and the control plane killed and
# restarted, partitions, a full disk, under load, then a check of every
# acknowledged write (the short form runs in unit). Needs root for the
# tmpfs; loopback only. FAULTS_CYCLES / FAULTS_DURATION bound it.
FAULTS_CYCLES   ?= 16
FAULTS_DURATION ?= 3m
faults:
	$(GO) test -race -count=1 -timeout 30m -v -run '^(TestFaults|TestFaultsControlPlane|TestClusterLagUnderSustainedLoad|TestClusterFreezeCatchUp|TestClusterFrozenHSMStallsNobody)$$' ./cmd/coffer/ \
		-args -faults.cycles=$(FAULTS_CYCLES) -faults.duration=$(FAULTS_DURATION) -sync.sustained=45s -faults.freeze

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1s ./internal/...

clean:
	rm -rf $(BIN)
