package relay_test

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"sotto/relay"
	"sotto/wire"
)

// TestGroupLargeHandshake: a commit request larger than a frame (a
// Welcome and GroupInfo carrying a large ratchet tree) is uploaded in
// parts and committed by reference; every bound is enforced (a part, an
// upload, the order of parts, an incomplete upload); the added member is
// told the Welcome's size and reads it in parts; nobody outside the group
// reads anything.
func TestGroupLargeHandshake(t *testing.T) {
	r := startLimitRelay(t, nil)
	alice := enrollFrom(t, r, "127.0.0.2", "alice")
	bob := enrollFrom(t, r, "127.0.0.3", "bob")
	mallory := enrollFrom(t, r, "127.0.0.4", "mallory")
	for _, d := range []*msgDevice{alice, bob, mallory} {
		d.c.SetReadLimit(wire.MaxFrameSize)
	}
	id := uint64(10)
	next := func() uint64 { id++; return id }
	do := func(d *msgDevice, req *wire.Request) *wire.Response {
		t.Helper()
		resp, _ := groupReq(t, d, next(), req)
		return resp
	}
	upload := func(d *msgDevice, u *wire.GroupUploadRequest) *wire.Response {
		t.Helper()
		return do(d, &wire.Request{Body: &wire.Request_GroupUpload{GroupUpload: u}})
	}
	commitRef := func(d *msgDevice, uid []byte) *wire.Response {
		t.Helper()
		return do(d, &wire.Request{Body: &wire.Request_GroupCommit{GroupCommit: &wire.GroupCommitRequest{UploadId: uid}}})
	}

	g := []byte("large-group-0001")
	welcome := bytes.Repeat([]byte("w"), 600<<10)
	info := bytes.Repeat([]byte("i"), 500<<10)
	full, err := proto.Marshal(&wire.GroupCommitRequest{GroupId: g, Commit: []byte("c0"), Welcome: welcome, GroupInfo: info,
		Added: []*wire.GroupDevice{{Username: "bob", DeviceId: bob.id}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(full) <= wire.MaxFrameSize {
		t.Fatalf("the test's request (%d bytes) fits in a frame", len(full))
	}
	uid := []byte("upload-1")
	part := func(off int) *wire.GroupUploadRequest {
		end := min(off+relay.GroupPartMax, len(full))
		return &wire.GroupUploadRequest{UploadId: uid, Total: uint64(len(full)), Offset: uint64(off), Data: full[off:end]}
	}

	// Bounds: an upload larger than the relay takes, a part larger than
	// a part, a part past the end, a first part not at 0.
	wantCode(t, "upload too large", upload(alice, &wire.GroupUploadRequest{UploadId: uid, Total: relay.MaxGroupHandshake + 1, Data: []byte("x")}), wire.ErrorCode_TOO_LARGE)
	wantCode(t, "part too large", upload(alice, &wire.GroupUploadRequest{UploadId: uid, Total: uint64(len(full)), Data: full[:relay.GroupPartMax+1]}), wire.ErrorCode_BAD_REQUEST)
	wantCode(t, "part past the end", upload(alice, &wire.GroupUploadRequest{UploadId: uid, Total: 10, Offset: 5, Data: make([]byte, 6)}), wire.ErrorCode_BAD_REQUEST)
	wantCode(t, "first part not at 0", upload(alice, part(relay.GroupPartMax)), wire.ErrorCode_NOT_FOUND)
	wantCode(t, "unknown upload", commitRef(alice, uid), wire.ErrorCode_NOT_FOUND)

	resp := upload(alice, part(0))
	wantCode(t, "first part", resp, wire.ErrorCode_OK)
	if got := resp.GetGroupUpload().GetReceived(); got != relay.GroupPartMax {
		t.Fatalf("received %d after the first part", got)
	}
	wantCode(t, "a part sent again", upload(alice, part(0)), wire.ErrorCode_OK)
	wantCode(t, "a gap", upload(alice, part(2*relay.GroupPartMax)), wire.ErrorCode_BAD_REQUEST)
	wantCode(t, "incomplete upload", commitRef(alice, uid), wire.ErrorCode_BAD_REQUEST)
	wantCode(t, "another device's upload", commitRef(bob, uid), wire.ErrorCode_NOT_FOUND)
	for off := relay.GroupPartMax; off < len(full); off += relay.GroupPartMax {
		wantCode(t, "part", upload(alice, part(off)), wire.ErrorCode_OK)
	}
	resp = commitRef(alice, uid)
	wantCode(t, "commit by reference", resp, wire.ErrorCode_OK)
	if !resp.GetGroupCommit().GetAccepted() {
		t.Fatalf("commit not accepted: %v", resp.GetGroupCommit())
	}
	wantCode(t, "the upload is used up", commitRef(alice, uid), wire.ErrorCode_NOT_FOUND)

	// bob is told the Welcome's size and reads it in parts.
	resp = do(bob, &wire.Request{Body: &wire.Request_GroupFetch{GroupFetch: &wire.GroupFetchRequest{}}})
	wantCode(t, "fetch", resp, wire.ErrorCode_OK)
	ms := resp.GetGroupFetch().GetMessages()
	if len(ms) != 1 || ms[0].Kind != wire.GroupMessageKind_GROUP_WELCOME || len(ms[0].Content) != 0 || ms[0].Size != uint64(len(welcome)) {
		t.Fatalf("bob's fetch: %d messages %v", len(ms), ms)
	}
	read := func(d *msgDevice, seq uint64, size int) ([]byte, *wire.Response) {
		t.Helper()
		var got []byte
		for len(got) < size {
			resp := do(d, &wire.Request{Body: &wire.Request_GroupRead{GroupRead: &wire.GroupReadRequest{GroupId: g, Seq: seq,
				Offset: uint64(len(got)), Length: relay.GroupPartMax}}})
			if resp.Code != wire.ErrorCode_OK {
				return got, resp
			}
			got = append(got, resp.GetGroupRead().GetData()...)
		}
		return got, nil
	}
	if got, bad := read(bob, ms[0].Seq, len(welcome)); bad != nil || !bytes.Equal(got, welcome) {
		t.Fatalf("bob's read of the Welcome: %d bytes, %v", len(got), bad)
	}
	wantCode(t, "a read larger than a part", do(bob, &wire.Request{Body: &wire.Request_GroupRead{GroupRead: &wire.GroupReadRequest{GroupId: g, Seq: ms[0].Seq,
		Length: relay.GroupPartMax + 1}}}), wire.ErrorCode_BAD_REQUEST)
	// The GroupInfo is announced by its size and read as seq 0.
	resp = do(bob, &wire.Request{Body: &wire.Request_GroupInfo{GroupInfo: &wire.GroupInfoRequest{GroupId: g}}})
	if gi := resp.GetGroupInfo(); resp.Code != wire.ErrorCode_OK || len(gi.GetGroupInfo()) != 0 || gi.GetSize() != uint64(len(info)) {
		t.Fatalf("group info: %v %v", resp.Code, gi)
	}
	if got, bad := read(bob, 0, len(info)); bad != nil || !bytes.Equal(got, info) {
		t.Fatalf("bob's read of the GroupInfo: %d bytes, %v", len(got), bad)
	}
	// mallory, outside the group, reads nothing.
	for _, seq := range []uint64{0, ms[0].Seq} {
		if _, bad := read(mallory, seq, 1); bad == nil || bad.Code != wire.ErrorCode_NOT_FOUND {
			t.Fatalf("mallory reads seq %d: %v", seq, bad)
		}
	}
}
