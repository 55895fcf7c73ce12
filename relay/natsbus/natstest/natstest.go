// Package natstest finds the NATS server for tests: SOTTO_TEST_NATS_URL,
// or by default nats://127.0.0.1:4222. When it is unreachable the test
// is skipped, unless CI=true: then it fails, so that CI exercises NATS.
package natstest

import (
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"sotto/internal/testneed"
)

// DefaultURL is the local test server.
const DefaultURL = "nats://127.0.0.1:4222"

// URL returns the test server's URL after checking that it answers.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("SOTTO_TEST_NATS_URL")
	if url == "" {
		url = DefaultURL
	}
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
	if err != nil {
		testneed.Skip(t, "natstest: NATS unreachable at %s (set SOTTO_TEST_NATS_URL): %v", url, err)
	}
	nc.Close()
	return url
}

// Conn returns a connection to the test server, closed when the test ends.
func Conn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
