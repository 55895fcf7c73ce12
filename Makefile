# The project's commands. `make test` is the one the README and CI use.
GO ?= go
FUZZTIME ?= 5s

.PHONY: test deps check unit fuzz-short relay

test: deps check unit fuzz-short

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

unit:
	$(GO) test -count=1 ./...
	# Calls again with Opus (cgo, libopus-dev); the default build above uses G.711.
	$(GO) test -count=1 -tags 'opus nolibopusfile' ./client/call/...
	$(GO) test -count=1 -tags 'opus nolibopusfile' -run 'TestCallScripts' ./cmd/sotto

# A few seconds of coverage-guided fuzzing for every fuzz target, on top of the seed corpora
# that `go test` already runs.
fuzz-short:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz-short.sh

# Run a development relay on the embedded SQLite default, its data in ./sotto-data.
relay:
	$(GO) run ./cmd/sottod serve -data ./sotto-data
