package signalpeer_test

import (
	"context"
	"errors"
	"os/exec"
	"testing"

	"sotto/internal/testneed"
	"sotto/interop/signalpeer"
)

// shell starts a tiny misbehaving "peer" written in sh.
func shell(t *testing.T, script string) *signalpeer.Peer {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		testneed.Skip(t, "no sh: %v", err)
	}
	p, err := signalpeer.Start(t.Context(), "sh", sh, "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPeerThatExits(t *testing.T) {
	p := shell(t, "exit 0")
	err := p.Call(t.Context(), "has_session", map[string]any{"name": "a", "peer": "b"}, nil)
	if !errors.Is(err, signalpeer.ErrProtocol) {
		t.Fatalf("call to an exited peer: got %v, want ErrProtocol", err)
	}
	if err2 := p.Call(t.Context(), "has_session", nil, nil); !errors.Is(err2, signalpeer.ErrProtocol) {
		t.Fatalf("second call: got %v, want ErrProtocol", err2)
	}
}

func TestPeerReplyMismatch(t *testing.T) {
	for name, script := range map[string]string{
		"not JSON":      `read x; echo 'hello'`,
		"wrong id":      `read x; echo '{"id": 99, "ok": true}'`,
		"unknown kind":  `read x; echo '{"id": 1, "ok": false, "error": "oops: no"}'`,
		"no id at all":  `read x; echo '{"ok": true}'`,
		"exits halfway": `read x; exit 3`,
	} {
		t.Run(name, func(t *testing.T) {
			p := shell(t, script)
			err := p.Call(t.Context(), "trust", map[string]any{"name": "a", "peer": "b"}, nil)
			if !errors.Is(err, signalpeer.ErrProtocol) {
				t.Fatalf("got %v, want ErrProtocol", err)
			}
		})
	}
}

func TestPeerErrorKinds(t *testing.T) {
	p := startGo(t)
	ctx := context.Background()
	a := signalpeer.Address{Name: "alice"}
	if _, err := p.Create(ctx, a, 1, 0); err != nil {
		t.Fatal(err)
	}
	_, err := p.Create(ctx, a, 2, 0)
	if !errors.Is(err, &signalpeer.Error{Kind: signalpeer.KindInvalidArgument}) {
		t.Fatalf("duplicate create: got %v, want an invalid_argument error", err)
	}
	if errors.Is(err, &signalpeer.Error{Kind: signalpeer.KindNoSession}) {
		t.Fatal("an invalid_argument error matches no_session")
	}
	var pe *signalpeer.Error
	if !errors.As(err, &pe) || pe.Op != "create" || pe.Peer != "go" {
		t.Fatalf("error %#v does not name its op and peer", err)
	}
	if signalpeer.KindOf(errors.New("other")) != "" {
		t.Fatal("KindOf of a foreign error is not empty")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := p.HasSession(ctx, a, signalpeer.Address{Name: "bob"}); err == nil {
		t.Fatal("call after close succeeded")
	}
}
