# Coffer build and test entry points. `make test` is what CI runs.
GO        ?= go
# Go 1.27.3: the release with the standard-library security fixes govulncheck
# asks for, fetched by the go command through the module proxy on first use.
export GOTOOLCHAIN := go1.27.3
BIN       := bin
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

# coffer, the binary HSM nodes run as, is built on BoringCrypto
# (GOEXPERIMENT=boringcrypto: Go's crypto/* API backed by BoringSSL's FIPS
# module, faster for RSA and ECDSA) where Go supports it: linux/amd64 or
# linux/arm64 with cgo on and the C compiler present. Elsewhere, or with
# CRYPTO=native (make build-native), on Go's own crypto. CRYPTO=boringcrypto
# insists. The PKCS#11 library is always built on Go's own crypto: it does
# little cryptography (TLS to the HSMs) and is loaded into other programs.
# `bin/coffer version` says which backend a binary runs.
CRYPTO    ?= auto
BORING_OK := $(shell GOTOOLCHAIN=$(GOTOOLCHAIN) $(GO) env GOOS GOARCH CGO_ENABLED CC 2>/dev/null | tr '\n' ' ' | \
	{ read os arch cgo cc; case "$$os/$$arch/$$cgo" in (linux/amd64/1|linux/arm64/1) \
	command -v "$${cc%% *}" >/dev/null 2>&1 && echo yes;; esac; })
ifeq ($(CRYPTO),native)
COFFER_GOEXPERIMENT :=
else ifeq ($(CRYPTO),boringcrypto)
COFFER_GOEXPERIMENT := boringcrypto
else ifeq ($(CRYPTO)$(BORING_OK),autoyes)
COFFER_GOEXPERIMENT := boringcrypto
else ifeq ($(CRYPTO),auto)
COFFER_GOEXPERIMENT :=
else
$(error CRYPTO must be auto, boringcrypto or native, not $(CRYPTO))
endif

.PHONY: build build-native test vet fmt-check vulncheck unit unit-fips fuzz-short fuzz bench perf faults clean

build:
	GOEXPERIMENT=$(COFFER_GOEXPERIMENT) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/coffer ./cmd/coffer
	$(BIN)/coffer version
	GOEXPERIMENT= $(GO) build -trimpath -buildmode=c-shared -o $(BIN)/libcoffer_pkcs11.so ./cmd/libcoffer_pkcs11

build-native:
	$(MAKE) build CRYPTO=native

test: build vet fmt-check vulncheck unit unit-fips fuzz-short

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

# The device's cryptography, its known-answer and Wycheproof tests among
# them, and the stores and certificates it relies on, again in Go's FIPS
# 140-3 mode (internal/node's tests run in it always); then the
# device's Wycheproof, known-answer and FIPS-only tests with the module
# enforced, as a FIPS-mode HSM on a native build runs (it starts itself
# with fips140=only; TestUpFIPS runs a cluster so): there a vector the
# module does not approve must be refused, saying so.
unit-fips:
	GODEBUG=fips140=on $(GO) test -count=1 -timeout 10m ./internal/hsm/... ./internal/cryptobackend/ ./internal/pki/ ./internal/store/
	GODEBUG=fips140=only $(GO) test -count=1 -timeout 10m -run 'FIPSOnly|TestInfoString|Wycheproof|KnownAnswers|Vectors' \
		./internal/hsm/ ./internal/hsm/mech/ ./internal/cryptobackend/

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

# The figures of docs/PERFORMANCE.md in one run on this machine (about 15
# minutes): a cluster of its own and SoftHSMv2 through the same PKCS#11
# code. Needs jq, softhsm2 and the aws CLI. DUR=2s for a quicker pass.
perf: build
	BIN=$(BIN) bash scripts/perf.sh

clean:
	rm -rf $(BIN)
