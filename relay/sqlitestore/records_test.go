package sqlitestore_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/blobstore"
	"sotto/relay/sqlitestore"
	"sotto/transparency"
	"sotto/wire"
)

// recordsDoc is the document whose table lists every column the relay
// stores, and the heading of that table.
const (
	recordsDoc     = "../../docs/architecture.md"
	recordsHeading = "### What the relay stores, for how long, and why"
)

// documentedColumns parses the table under recordsHeading: database file
// -> "table.column" -> true.
func documentedColumns(t *testing.T) map[string]map[string]bool {
	t.Helper()
	f, err := os.Open(recordsDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]bool{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == recordsHeading:
			in = true
			continue
		case in && strings.HasPrefix(line, "#"):
			in = false
		}
		if !in || !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 4 {
			continue
		}
		db := strings.TrimSpace(cells[0])
		if db != "relay.db" && db != "blobs.db" {
			continue
		}
		col := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if !strings.Contains(col, ".") || strings.TrimSpace(cells[2]) == "" || strings.TrimSpace(cells[3]) == "" {
			t.Errorf("%s: row %q needs table.column, a lifetime and a purpose", recordsDoc, line)
			continue
		}
		if out[db] == nil {
			out[db] = map[string]bool{}
		}
		if out[db][col] {
			t.Errorf("%s: %s %s listed twice", recordsDoc, db, col)
		}
		out[db][col] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out["relay.db"]) == 0 || len(out["blobs.db"]) == 0 {
		t.Fatalf("%s: no table under %q", recordsDoc, recordsHeading)
	}
	return out
}

// createdTables lists the tables the non-test Go files of dir create.
func createdTables(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`CREATE TABLE IF NOT EXISTS (\w+)`)
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			out = append(out, m[1])
		}
	}
	if len(out) == 0 {
		t.Fatalf("no CREATE TABLE in %s", dir)
	}
	return out
}

// fillStores takes a relay store and a blob index through every path that
// creates a table: a bootstrap enrollment (org key, identity certificate,
// key log), an access key, an org document, a device link, a send, a
// revocation, and a blob.
func fillStores(t *testing.T, dir, blobDir string) {
	t.Helper()
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	s, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seat := sha256.Sum256([]byte("seat"))
	if err := s.CreateCode(ctx, relay.Code{ID: "c1", Hash: seat, Seats: 1, Created: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	binding := transparency.Binding{Kind: transparency.KindAdd, Username: "alice", IdentityKey: []byte("ik"), TimestampMS: now.UnixMilli()}
	leaf, err := binding.Encode()
	if err != nil {
		t.Fatal(err)
	}
	keys := relay.PreKeys{
		SignedPreKey:    &relay.SignedPreKey{ID: 1, PublicKey: []byte("spk"), Signature: []byte("sig")},
		LastResortKyber: &relay.SignedPreKey{ID: 2, PublicKey: []byte("kyber"), Signature: []byte("sig")},
		OneTime:         []relay.SignedPreKey{{ID: 3, PublicKey: []byte("ec")}},
	}
	acct, _, err := s.Enroll(ctx, relay.NewAccount{CodeHash: seat, ID: relay.AccountID{1}, Username: "alice", IdentityKey: []byte("ik"),
		Device: relay.Device{DeviceKey: []byte("dk"), RegistrationID: 1}, PreKeys: keys,
		LogLeaf: leaf, Certificate: []byte("certificate"), OrgKey: []byte("org key")}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetAccessKey(ctx, acct.ID, make([]byte, wire.AccessKeySize)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOrgDocument(ctx, wire.OrgDocumentKind_ORG_NOTICE, "", []byte("notice")); err != nil {
		t.Fatal(err)
	}
	link := sha256.Sum256([]byte("link"))
	if err := s.CreateLinkToken(ctx, acct.ID, link, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateLinkToken(ctx, acct.ID, sha256.Sum256([]byte("unused")), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, phone, err := s.LinkDevice(ctx, link, []byte("ik"), relay.Device{DeviceKey: []byte("dk2"), RegistrationID: 2}, keys, 6, now)
	if err != nil {
		t.Fatal(err)
	}
	sd := &relay.Send{Sender: relay.DeviceAddr{Account: acct.ID, Device: 1}, MessageID: []byte("m"), Timestamp: now,
		Envelopes: []relay.Envelope{{Recipient: phone.Addr, Sender: "alice", SenderDevice: 1, Timestamp: now, Type: 1, Content: []byte("c"), MessageID: []byte("m")}}}
	if _, err := s.Append(ctx, sd); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, phone.Addr, now); err != nil {
		t.Fatal(err)
	}
	x, err := blobstore.Open(ctx, blobDir)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	b := relay.Blob{ID: relay.BlobID{1}, Size: 10, Created: now, Expires: now.Add(time.Hour)}
	if err := x.CreateBlob(ctx, b, relay.BlobCharge{Uploader: relay.DeviceAddr{Account: acct.ID, Device: 1}, Quota: 100, Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
}

// TestRecordsTableMatchesSchema: the table "What the relay stores, for how
// long, and why" in docs/architecture.md lists exactly the columns of the
// relay's databases, as SQLite reports them after every table was created.
func TestRecordsTableMatchesSchema(t *testing.T) {
	dir := t.TempDir()
	blobDir := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobDir, 0o700); err != nil {
		t.Fatal(err)
	}
	fillStores(t, dir, blobDir)
	real := map[string]map[string]map[string]bool{
		"relay.db": schemaOf(t, filepath.Join(dir, sqlitestore.FileName)),
		"blobs.db": schemaOf(t, filepath.Join(blobDir, blobstore.FileName)),
	}
	// The segments of the envelope log, env_seg_0 … and their ack
	// tables ack_seg_0 …, share one shape, documented (and created in the
	// code) as env_seg_N and ack_seg_N.
	segs := regexp.MustCompile(`^(env|ack)_seg_[0-9]+$`)
	for tbl, cols := range real["relay.db"] {
		if segs.MatchString(tbl) {
			delete(real["relay.db"], tbl)
			real["relay.db"][tbl[:len("env_seg_")]+"N"] = cols
		}
	}
	// Every table the stores' code can create exists: fillStores went
	// down every path (a new lazily created table must be added there).
	for db, src := range map[string]string{"relay.db": ".", "blobs.db": "../blobstore"} {
		for _, tbl := range createdTables(t, src) {
			if real[db][tbl] == nil {
				t.Errorf("%s: table %s (created in %s) does not exist after fillStores", db, tbl, src)
			}
		}
	}
	doc := documentedColumns(t)
	for db, tables := range real {
		var names []string
		for tbl, cols := range tables {
			if strings.HasPrefix(tbl, "sqlite_") {
				continue // SQLite's own
			}
			for col := range cols {
				names = append(names, tbl+"."+col)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			if !doc[db][n] {
				t.Errorf("%s column %s is not in %s %q: say how long it is kept and why", db, n, recordsDoc, recordsHeading)
			}
		}
		for n := range doc[db] {
			if !slices.Contains(names, n) {
				t.Errorf("%s %q lists %s %s, which the schema does not have", recordsDoc, recordsHeading, db, n)
			}
		}
	}
}
