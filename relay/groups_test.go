package relay_test

import (
	"testing"

	"sotto/wire"
)

// groupReq sends req as request id on d and returns the response, after
// skipping pushes (returned too).
func groupReq(t *testing.T, d *msgDevice, id uint64, req *wire.Request) (*wire.Response, []*wire.Push) {
	t.Helper()
	req.Id = id
	sendReq(t, d.rawConn, req)
	var pushes []*wire.Push
	for {
		f := d.next()
		if p := f.GetPush(); p != nil {
			pushes = append(pushes, p)
			continue
		}
		if r := f.GetResponse(); r != nil && r.Id == id {
			return r, pushes
		}
		t.Fatalf("%s: unexpected frame %v", d.name, f)
	}
}

func wantCode(t *testing.T, who string, r *wire.Response, code wire.ErrorCode) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("%s: got %v (%s), want %v", who, r.Code, r.Message, code)
	}
}

// TestGroupDeliveryService drives the relay's MLS Delivery Service over
// real connections and a real store: KeyPackages are handed out one per
// device, a group message is pushed as a wake-up to the connected member
// devices, the first commit for an epoch wins and the loser is handed the
// winner, and a device outside the group can neither post, commit, nor
// read the group's GroupInfo.
func TestGroupDeliveryService(t *testing.T) {
	r := startLimitRelay(t, nil)
	alice := enrollFrom(t, r, "127.0.0.2", "alice")
	bob := enrollFrom(t, r, "127.0.0.3", "bob")
	mallory := enrollFrom(t, r, "127.0.0.4", "mallory")
	id := uint64(10)
	next := func() uint64 { id++; return id }

	resp, _ := groupReq(t, bob, next(), &wire.Request{Body: &wire.Request_UploadKeyPackages{UploadKeyPackages: &wire.UploadKeyPackagesRequest{
		KeyPackages: [][]byte{[]byte("kp-1")}, LastResort: []byte("kp-last")}}})
	wantCode(t, "upload", resp, wire.ErrorCode_OK)
	for _, want := range []string{"kp-1", "kp-last", "kp-last"} {
		resp, _ = groupReq(t, alice, next(), &wire.Request{Body: &wire.Request_FetchKeyPackages{FetchKeyPackages: &wire.FetchKeyPackagesRequest{Username: "bob"}}})
		wantCode(t, "fetch key packages", resp, wire.ErrorCode_OK)
		kps := resp.GetFetchKeyPackages().GetKeyPackages()
		if len(kps) != 1 || string(kps[0].KeyPackage) != want || kps[0].LastResort != (want == "kp-last") {
			t.Fatalf("key packages %v, want %s", kps, want)
		}
	}
	resp, _ = groupReq(t, bob, next(), &wire.Request{Body: &wire.Request_FetchKeyPackages{FetchKeyPackages: &wire.FetchKeyPackagesRequest{Username: "alice"}}})
	wantCode(t, "alice has none", resp, wire.ErrorCode_NOT_FOUND)

	g := []byte("group-id-0123456")
	commit := func(d *msgDevice, epoch uint64, c string, added ...*wire.GroupDevice) *wire.Response {
		t.Helper()
		req := &wire.GroupCommitRequest{GroupId: g, Epoch: epoch, Commit: []byte(c), Added: added, GroupInfo: []byte("gi-" + c)}
		if len(added) > 0 {
			req.Welcome = []byte("welcome-" + c)
		}
		resp, _ := groupReq(t, d, next(), &wire.Request{Body: &wire.Request_GroupCommit{GroupCommit: req}})
		return resp
	}
	// A commit naming a device that does not exist, or adding without a
	// Welcome, is refused.
	wantCode(t, "ghost device", commit(alice, 0, "c0", &wire.GroupDevice{Username: "bob", DeviceId: 9}), wire.ErrorCode_NOT_FOUND)
	badReq := &wire.GroupCommitRequest{GroupId: g, Commit: []byte("c"), Added: []*wire.GroupDevice{{Username: "bob", DeviceId: bob.id}}}
	resp, _ = groupReq(t, alice, next(), &wire.Request{Body: &wire.Request_GroupCommit{GroupCommit: badReq}})
	wantCode(t, "add without welcome", resp, wire.ErrorCode_BAD_REQUEST)

	resp = commit(alice, 0, "c0", &wire.GroupDevice{Username: "bob", DeviceId: bob.id})
	wantCode(t, "create", resp, wire.ErrorCode_OK)
	if !resp.GetGroupCommit().Accepted || resp.GetGroupCommit().Epoch != 1 {
		t.Fatalf("create: %v", resp.GetGroupCommit())
	}

	// alice posts: bob, connected, is woken and fetches it once.
	resp, _ = groupReq(t, alice, next(), &wire.Request{Body: &wire.Request_GroupSend{GroupSend: &wire.GroupSendRequest{GroupId: g, MessageId: []byte("m1"), Content: []byte("hello")}}})
	wantCode(t, "send", resp, wire.ErrorCode_OK)
	resp, pushes := groupReq(t, bob, next(), &wire.Request{Body: &wire.Request_GroupFetch{GroupFetch: &wire.GroupFetchRequest{}}})
	wantCode(t, "fetch", resp, wire.ErrorCode_OK)
	woken := false
	for _, p := range pushes {
		woken = woken || p.GetGroupWaiting() != nil
	}
	if !woken {
		t.Fatal("bob was not woken for the group's messages")
	}
	msgs := resp.GetGroupFetch().GetMessages()
	if len(msgs) != 2 || msgs[0].Kind != wire.GroupMessageKind_GROUP_WELCOME || string(msgs[0].Content) != "welcome-c0" ||
		msgs[1].Kind != wire.GroupMessageKind_GROUP_MESSAGE || string(msgs[1].Content) != "hello" {
		t.Fatalf("bob fetched %v", msgs)
	}
	resp, _ = groupReq(t, bob, next(), &wire.Request{Body: &wire.Request_GroupAck{GroupAck: &wire.GroupAckRequest{Acks: []*wire.GroupAck{{GroupId: g, Seq: msgs[1].Seq}}}}})
	wantCode(t, "ack", resp, wire.ErrorCode_OK)
	resp, _ = groupReq(t, bob, next(), &wire.Request{Body: &wire.Request_GroupFetch{GroupFetch: &wire.GroupFetchRequest{}}})
	if n := len(resp.GetGroupFetch().GetMessages()); n != 0 {
		t.Fatalf("%d messages after the ack", n)
	}

	// Two commits for epoch 1: the first wins, the second is handed it.
	wantCode(t, "bob's commit", commit(bob, 1, "c1-bob"), wire.ErrorCode_OK)
	lost := commit(alice, 1, "c1-alice").GetGroupCommit()
	if lost.Accepted || string(lost.Winner) != "c1-bob" || lost.Epoch != 2 {
		t.Fatalf("losing commit answered %v", lost)
	}

	// mallory is not in the group.
	resp, _ = groupReq(t, mallory, next(), &wire.Request{Body: &wire.Request_GroupSend{GroupSend: &wire.GroupSendRequest{GroupId: g, MessageId: []byte("x"), Content: []byte("x")}}})
	wantCode(t, "outsider posts", resp, wire.ErrorCode_FORBIDDEN)
	wantCode(t, "outsider commits", commit(mallory, 2, "c2-mallory"), wire.ErrorCode_FORBIDDEN)
	resp, _ = groupReq(t, mallory, next(), &wire.Request{Body: &wire.Request_GroupInfo{GroupInfo: &wire.GroupInfoRequest{GroupId: g}}})
	wantCode(t, "outsider reads the group info", resp, wire.ErrorCode_NOT_FOUND)
	resp, _ = groupReq(t, alice, next(), &wire.Request{Body: &wire.Request_GroupInfo{GroupInfo: &wire.GroupInfoRequest{GroupId: g}}})
	wantCode(t, "member reads the group info", resp, wire.ErrorCode_OK)
	if gi := resp.GetGroupInfo(); gi.Epoch != 2 || string(gi.GroupInfo) != "gi-c1-bob" {
		t.Fatalf("group info %v", gi)
	}
}
