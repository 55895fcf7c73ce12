package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// lineSession drives a peer in process, line by line.
type lineSession struct {
	t testing.TB
	p *peer
}

func (s *lineSession) call(req map[string]any) map[string]any {
	s.t.Helper()
	line, err := json.Marshal(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.raw(line)
}

func (s *lineSession) raw(line []byte) map[string]any {
	s.t.Helper()
	out := s.p.handle(context.Background(), line)
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		s.t.Fatalf("reply %q is not JSON: %v", out, err)
	}
	return m
}

func (s *lineSession) ok(req map[string]any) map[string]any {
	s.t.Helper()
	m := s.call(req)
	if m["ok"] != true {
		s.t.Fatalf("%v: %v", req["op"], m["error"])
	}
	return m
}

func (s *lineSession) fails(req map[string]any, kind string) {
	s.t.Helper()
	m := s.call(req)
	if m["ok"] != false || !strings.HasPrefix(m["error"].(string), kind+": ") {
		s.t.Fatalf("%v: got %v, want error kind %s", req["op"], m, kind)
	}
}

// conversation runs a short exchange between two parties of one process and returns
// the request lines it sent, as fuzz seeds.
func conversation(t testing.TB, p *peer) [][]byte {
	var lines [][]byte
	s := &lineSession{t: t, p: p}
	rec := func(req map[string]any) map[string]any {
		b, _ := json.Marshal(req)
		lines = append(lines, b)
		return s.ok(req)
	}
	rec(map[string]any{"id": 1, "op": "create", "name": "alice", "registration_id": 1, "prekeys": 2})
	rec(map[string]any{"id": 2, "op": "create", "name": "bob", "registration_id": 2, "prekeys": 2})
	b := rec(map[string]any{"id": 3, "op": "bundle", "name": "bob"})
	delete(b, "id")
	delete(b, "ok")
	rec(map[string]any{"id": 4, "op": "process_bundle", "name": "alice", "peer": "bob", "bundle": b})
	m := rec(map[string]any{"id": 5, "op": "encrypt", "name": "alice", "peer": "bob", "plaintext": "aGVsbG8="})
	d := rec(map[string]any{"id": 6, "op": "decrypt", "name": "bob", "peer": "alice", "type": m["type"], "ciphertext": m["ciphertext"]})
	if d["plaintext"] != "aGVsbG8=" {
		t.Fatalf("decrypted %v, want aGVsbG8=", d["plaintext"])
	}
	r := rec(map[string]any{"id": 7, "op": "encrypt", "name": "bob", "peer": "alice", "plaintext": ""})
	rec(map[string]any{"id": 8, "op": "decrypt", "name": "alice", "peer": "bob", "type": r["type"], "ciphertext": r["ciphertext"]})
	rec(map[string]any{"id": 9, "op": "fingerprint", "name": "alice", "peer": "bob", "local_id": "YQ==", "remote_id": "Yg=="})
	rec(map[string]any{"id": 10, "op": "has_session", "name": "alice", "peer": "bob"})
	rec(map[string]any{"id": 11, "op": "trust", "name": "alice", "peer": "bob"})
	return lines
}

func TestServeConversation(t *testing.T) {
	p := newPeer(rand.Reader, time.Now)
	conversation(t, p)
	s := &lineSession{t: t, p: p}
	if m := s.ok(map[string]any{"id": "x", "op": "has_session", "name": "bob", "peer": "alice"}); m["id"] != "x" || m["exists"] != true {
		t.Fatalf("has_session: %v", m)
	}
	// A second device of bob shares his identity key.
	k1 := s.ok(map[string]any{"id": 1, "op": "bundle", "name": "bob", "one_time": false})["identity_key"]
	k2 := s.ok(map[string]any{"id": 2, "op": "create", "name": "bob", "device_id": 2, "registration_id": 3})["identity_key"]
	if k1 != k2 {
		t.Fatal("second device of bob has another identity key")
	}
	s.ok(map[string]any{"id": 3, "op": "bundle", "name": "bob", "device_id": 1})
	s.fails(map[string]any{"id": 3, "op": "bundle", "name": "bob", "device_id": 1}, "invalid_argument") // both handed out
	s.fails(map[string]any{"id": 4, "op": "create", "name": "carol", "registration_id": 0}, "invalid_argument")
	s.fails(map[string]any{"id": 5, "op": "encrypt", "name": "alice", "peer": "carol", "plaintext": ""}, "no_session")
	s.fails(map[string]any{"id": 6, "op": "decrypt", "name": "alice", "peer": "bob", "type": 2, "ciphertext": "AAAA"}, "invalid_message")
	s.fails(map[string]any{"id": 7, "op": "decrypt", "name": "alice", "peer": "bob", "type": 9, "ciphertext": "AAAA"}, "invalid_argument")
	s.fails(map[string]any{"id": 8, "op": "fingerprint", "name": "alice", "peer": "zed", "local_id": "", "remote_id": ""}, "no_session")
	s.fails(map[string]any{"id": 9, "op": "nope"}, "invalid_argument")
	if m := s.raw([]byte(`{"id": 10, "op": "encrypt", "plaintext": "%%%"}`)); m["id"] != float64(10) || m["ok"] != false {
		t.Fatalf("bad base64: %v", m)
	}
	if m := s.raw([]byte(`not json`)); m["id"] != nil || m["ok"] != false {
		t.Fatalf("bad JSON: %v", m)
	}
}

func TestServeLines(t *testing.T) {
	in := strings.NewReader(`{"id":1,"op":"create","name":"a","registration_id":7,"prekeys":0}` + "\n\n" +
		`{"id":2,"op":"bundle","name":"a","one_time":false}` + "\n" + `{"id":3,"op":"bundle","name":"a"}` + "\n")
	var out bytes.Buffer
	if err := newPeer(rand.Reader, time.Now).serve(context.Background(), in, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d reply lines, want 3:\n%s", len(lines), out.String())
	}
	for i, want := range []string{`"ok":true`, `"ok":true`, `"error":"invalid_argument: `} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], `"id":`+string(rune('1'+i))) {
			t.Errorf("reply %d = %s, want it to contain %s", i+1, lines[i], want)
		}
	}
}

var knownKinds = []string{"invalid_message", "duplicate_message", "untrusted_identity", "no_session", "invalid_key_id", "invalid_argument", "invalid_certificate"}

// FuzzHandle feeds arbitrary request lines to a peer holding a live session: every
// reply is one JSON object with ok, and a failure names a known kind other than
// internal.
func FuzzHandle(f *testing.F) {
	seeds := conversation(f, newPeer(rand.Reader, time.Now))
	if len(seeds) == 0 {
		f.Fatal("no seed requests")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	// One peer for all inputs: the properties checked hold in any state it reaches.
	p := newPeer(rand.Reader, time.Now)
	conversation(f, p)
	f.Fuzz(func(t *testing.T, line []byte) {
		out := p.handle(context.Background(), line)
		if bytes.ContainsRune(out, '\n') {
			t.Fatalf("reply spans lines: %q", out)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("reply %q is not JSON: %v", out, err)
		}
		ok, isBool := m["ok"].(bool)
		if !isBool {
			t.Fatalf("reply without ok: %s", out)
		}
		if ok {
			return
		}
		msg, _ := m["error"].(string)
		for _, k := range knownKinds {
			if strings.HasPrefix(msg, k+": ") {
				return
			}
		}
		t.Fatalf("error %q has no known kind", msg)
	})
}
