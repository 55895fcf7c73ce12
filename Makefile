# The project's commands. `make test` is the one the README and CI use.
GO ?= go
FUZZTIME ?= 5s

.PHONY: test deps check unit fuzz-short relay release repro guide

test: deps check unit fuzz-short repro guide

# The Node test peers (libsignal, pinned: 0.90.0 and the newest release) for the
# Signal interop tests.
deps:
	cd interop/signal-node && npm ci --no-audit --no-fund --loglevel=error
	cd interop/signal-node-latest && npm ci --no-audit --no-fund --loglevel=error

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff
	@if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed: skipped"; fi

# Every package under the race detector: most start goroutines (the relay, the client's
# receive loop and timers, calls, MLS's batch encryption, the test servers), and for the
# others it costs little. The known-answer vector tests alone run without it: they start no
# goroutine of their own (MLS's are those the group tests run under it) and take 16 times
# longer under it. The timeout leaves room for the end-to-end scripts, slower under -race.
unit:
	$(GO) test -race -count=1 -timeout 30m -skip '^Test.*Vectors$$' ./...
	$(GO) test -count=1 -run '^Test.*Vectors$$' ./mls/... ./signal/... ./transparency/...
	# Calls again with Opus (cgo, libopus-dev); the default build above uses G.711.
	$(GO) test -race -count=1 -timeout 20m -tags 'opus nolibopusfile' ./client/call/...
	$(GO) test -race -count=1 -timeout 30m -tags 'opus nolibopusfile' -run 'TestCallScripts' ./cmd/sotto

# A few seconds of coverage-guided fuzzing for every fuzz target, on top of the seed corpora
# that `go test` already runs.
fuzz-short:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz-short.sh

# Run a development relay on the embedded SQLite default, its data in ./sotto-data.
relay:
	$(GO) run ./cmd/sottod serve -data ./sotto-data

# Release builds of sotto and sottod for every platform, reproducibly (docs/operating.md,
# "Release builds"). VERSION defaults to `git describe`; RELEASE_KEY is the hex Ed25519
# public key the binaries pin for `sotto update`.
VERSION ?= $(shell git describe --tags --match 'v[0-9]*' 2>/dev/null || echo v0.0.0-dev)
release:
	VERSION=$(VERSION) RELEASE_KEY=$(RELEASE_KEY) scripts/release-build.sh dist/$(VERSION)
	VERSION=$(VERSION) scripts/package.sh dist/$(VERSION)

# Two independent builds of linux/amd64 (other folder, user, HOME, GOCACHE, time) must be
# byte-identical.
repro:
	scripts/repro-check.sh linux/amd64

# docs/operating.md followed step by step on this machine: installs the .debs (as root, under
# CI or with SOTTO_GUIDE_TEST=1), runs the relay as its unit does, enrolls a client over TLS,
# backs up, restores, upgrades, tries PostgreSQL and NATS; then removes what it installed.
guide:
	scripts/operating-guide.sh
