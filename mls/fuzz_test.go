package mls

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"sotto/mls/internal/vectortest"
)

// fuzzSeeds adds the generated seeds and the hex fields named in files
// from the vector files. Without the vector folder only generated seeds
// are used (logged); with it, a field list that yields no seed fails.
func fuzzSeeds(f *testing.F, generated [][]byte, files map[string][]string) [][]byte {
	f.Helper()
	seeds := append([][]byte(nil), generated...)
	if _, err := os.Stat(vectortest.Dir()); vectortest.Dir() == "" || err != nil {
		f.Logf("MLS vectors not found; seeding from generated messages only (set %s)", vectortest.EnvVar)
	} else {
		n := len(seeds)
		for name, fields := range files {
			raw, err := vectortest.ReadFile(name)
			if err != nil {
				f.Fatalf("seed file %s: %v", name, err)
			}
			var cases []map[string]json.RawMessage
			if err := json.Unmarshal(raw, &cases); err != nil {
				f.Fatalf("seed file %s: %v", name, err)
			}
			for _, c := range cases {
				for _, field := range fields {
					var h vectortest.Hex
					if m, ok := c[field]; ok && json.Unmarshal(m, &h) == nil && len(h) > 0 {
						seeds = append(seeds, h)
					}
				}
			}
		}
		if len(seeds) == n {
			f.Fatal("no fuzz seeds loaded from the vector files")
		}
	}
	if len(seeds) == 0 {
		f.Fatal("fuzz seed corpus is empty")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	return seeds
}

// generatedSeeds are wire encodings produced by this package: a
// KeyPackage, a Welcome, a GroupInfo and a PublicMessage commit (all as
// MLSMessage), a PrivateMessage, the ratchet tree, the bare commit and a
// GroupSecrets.
type generatedSeeds struct {
	messages, trees, commits, groupSecrets [][]byte
}

func generateSeeds(f *testing.F) *generatedSeeds {
	f.Helper()
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, err := GenerateSignatureKey(cs)
	if err != nil {
		f.Fatal(err)
	}
	g, err := NewGroup(cs, []byte("seed"), []byte("alice"), sig)
	if err != nil {
		f.Fatal(err)
	}
	bobSig, _ := GenerateSignatureKey(cs)
	kp, _, err := NewKeyPackage(cs, []byte("bob"), bobSig)
	if err != nil {
		f.Fatal(err)
	}
	p, err := g.Commit(CommitOptions{Add: [][]byte{kp}})
	if err != nil {
		f.Fatal(err)
	}
	if err := g.Apply(p); err != nil {
		f.Fatal(err)
	}
	gi, err := g.GroupInfo()
	if err != nil {
		f.Fatal(err)
	}
	app, err := g.Seal([]byte("seed"))
	if err != nil {
		f.Fatal(err)
	}
	tree, err := g.st.tree.marshal()
	if err != nil {
		f.Fatal(err)
	}
	var m mlsMessage
	if err := unmarshal(p.Commit, &m); err != nil {
		f.Fatal(err)
	}
	c, err := marshal(&m.public.content.commit)
	if err != nil {
		f.Fatal(err)
	}
	gs, err := marshal(&groupSecrets{joinerSecret: make([]byte, 32), hasPath: true, pathSecret: make([]byte, 32),
		psks: []preSharedKeyID{{pskType: pskExternal, pskID: []byte("id"), pskNonce: make([]byte, 32)}}})
	if err != nil {
		f.Fatal(err)
	}
	return &generatedSeeds{
		messages:     [][]byte{kp, p.Welcome, gi, p.Commit, app},
		trees:        [][]byte{tree},
		commits:      [][]byte{c},
		groupSecrets: [][]byte{gs},
	}
}

// checkRoundTrip asserts that an accepted input re-encodes to itself.
func checkRoundTrip(t *testing.T, in []byte, v codecValue) bool {
	if err := unmarshal(in, v); err != nil {
		return false
	}
	out, err := marshal(v)
	if err != nil {
		t.Fatalf("accepted input does not re-encode: %v", err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("round trip differs:\n in %x\nout %x", in, out)
	}
	return true
}

var messageSeedFields = map[string][]string{
	"messages.json": {"mls_welcome", "mls_group_info", "mls_key_package", "public_message_application",
		"public_message_proposal", "public_message_commit", "private_message"},
	"message-protection.json": {"proposal_pub", "proposal_priv", "commit_pub", "commit_priv", "application_priv"},
	"welcome.json":            {"welcome", "key_package"},
}

func FuzzMLSMessage(f *testing.F) {
	fuzzSeeds(f, generateSeeds(f).messages, messageSeedFields)
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRoundTrip(t, in, &mlsMessage{})
	})
}

// bodySeeds strips the 4-byte MLSMessage header from seeds of one wire format.
func bodySeeds(f *testing.F, wireFormat byte) {
	seeds := fuzzSeeds(f, generateSeeds(f).messages, messageSeedFields)
	n := 0
	for _, s := range seeds {
		if len(s) > 4 && s[0] == 0 && s[1] == 1 && s[2] == 0 && s[3] == wireFormat {
			f.Add(s[4:])
			n++
		}
	}
	if n == 0 {
		f.Fatalf("no seeds for wire format %d", wireFormat)
	}
}

func FuzzWelcome(f *testing.F) {
	bodySeeds(f, byte(wireFormatWelcome))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRoundTrip(t, in, &welcome{})
	})
}

func FuzzGroupInfo(f *testing.F) {
	bodySeeds(f, byte(wireFormatGroupInfo))
	f.Fuzz(func(t *testing.T, in []byte) {
		var g groupInfo
		if checkRoundTrip(t, in, &g) {
			s, err := CipherSuite(g.groupContext.cipherSuite).suite()
			if err == nil {
				if tbs, err := g.tbs(); err == nil {
					_ = s.verifyWithLabel(make([]byte, 32), "GroupInfoTBS", tbs, g.signature)
				}
			}
		}
	})
}

func FuzzKeyPackage(f *testing.F) {
	bodySeeds(f, byte(wireFormatKeyPackage))
	f.Fuzz(func(t *testing.T, in []byte) {
		var k keyPackage
		if checkRoundTrip(t, in, &k) {
			if s, err := CipherSuite(k.cipherSuite).suite(); err == nil {
				_ = k.verify(s)
			}
		}
		// The public inspector takes the MLSMessage around it.
		msg := append([]byte{0, 1, 0, byte(wireFormatKeyPackage)}, in...)
		if info, err := InspectKeyPackage(msg); err == nil && len(info.SignatureKey) == 0 {
			t.Fatal("inspected key package without a signature key")
		}
	})
}

func FuzzRatchetTree(f *testing.F) {
	fuzzSeeds(f, generateSeeds(f).trees, map[string][]string{
		"messages.json":        {"ratchet_tree"},
		"tree-validation.json": {"tree"},
		"treekem.json":         {"ratchet_tree"},
	})
	s, err := X25519_AES128GCM_SHA256_Ed25519.suite()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !checkRoundTrip(t, in, &treeNodes{}) {
			return
		}
		tree, err := parseRatchetTree(s, in)
		if err != nil {
			return
		}
		if _, err := tree.rootHash(); err != nil {
			t.Fatalf("tree hash of an accepted tree: %v", err)
		}
		_ = tree.verifyParentHashes()
		for i := uint32(0); i < tree.size() && i < 64; i++ {
			tree.filteredDirectPath(i)
		}
	})
}

func FuzzCommit(f *testing.F) {
	fuzzSeeds(f, generateSeeds(f).commits, map[string][]string{"messages.json": {"commit"}})
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRoundTrip(t, in, &commit{})
	})
}

func FuzzGroupSecrets(f *testing.F) {
	fuzzSeeds(f, generateSeeds(f).groupSecrets, map[string][]string{"messages.json": {"group_secrets"}})
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRoundTrip(t, in, &groupSecrets{})
	})
}
