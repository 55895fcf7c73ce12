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

# Every package under the race detector: most start goroutines (the relay, the client's
# receive loop and timers, calls, MLS's batch encryption, the test servers), and for the
# others it costs little. The known-answer vector tests alone run without it: they start no
# goroutine of their own (MLS's are those the group tests run under it) and take 16 times
# longer under it. The timeout leaves room for the end-to-end scripts, slower under -race.
unit:
	$(GO) test -race -count=1 -timeout 30m -skip '^Test.*Vectors$$' ./...
	$(GO) test -count=1 -run '^Test.*Vectors$$' ./mls/... ./signal/... ./transparency/...
	# Calls again with Opus (cgo, libopus-dev); the default build above uses G.711.
	$(GO) test -race -count=1 -tags 'opus nolibopusfile' ./client/call/...
	$(GO) test -race -count=1 -timeout 30m -tags 'opus nolibopusfile' -run 'TestCallScripts' ./cmd/sotto

# A few seconds of coverage-guided fuzzing for every fuzz target, on top of the seed corpora
# that `go test` already runs.
fuzz-short:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz-short.sh

# Run a development relay on the embedded SQLite default, its data in ./sotto-data.
relay:
	$(GO) run ./cmd/sottod serve -data ./sotto-data
