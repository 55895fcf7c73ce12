package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sotto/relay"
	"sotto/wire"
)

// pushedMessages returns the messages the GroupWaiting pushes carried,
// and how many GroupWaiting pushes there were.
func pushedMessages(ps []*wire.Push) (msgs []*wire.GroupMessage, wakeups int) {
	for _, p := range ps {
		if gw := p.GetGroupWaiting(); gw != nil {
			wakeups++
			msgs = append(msgs, gw.Messages...)
		}
	}
	return msgs, wakeups
}

// TestGroupPushCarriesMessages: on a single relay over SQLite, a small
// group message rides in the wake-up push, with the seq before it, to
// every connected member device, its sender getting it without content;
// a commit and a message too large to push are plain wake-ups; a device
// a commit removed gets the commit but no message stored after it, in a
// push or a fetch; a device the commit added gets its Welcome in place
// by fetching, then the next messages pushed.
func TestGroupPushCarriesMessages(t *testing.T) {
	r := startLimitRelay(t, nil)
	alice := enrollFrom(t, r, "127.0.0.2", "alice")
	bob := enrollFrom(t, r, "127.0.0.3", "bob")
	carol := enrollFrom(t, r, "127.0.0.4", "carol")
	dave := enrollFrom(t, r, "127.0.0.5", "dave")
	id := uint64(10)
	next := func() uint64 { id++; return id }
	g := []byte("group-push-01234")

	req := &wire.GroupCommitRequest{GroupId: g, Epoch: 0, Commit: []byte("c0"), GroupInfo: []byte("gi"), Welcome: []byte("welcome-c0"),
		Added: []*wire.GroupDevice{{Username: "bob", DeviceId: bob.id}, {Username: "carol", DeviceId: carol.id}}}
	resp, _ := groupReq(t, alice, next(), &wire.Request{Body: &wire.Request_GroupCommit{GroupCommit: req}})
	wantCode(t, "create", resp, wire.ErrorCode_OK)
	created := resp.GetGroupCommit().Seq

	// drain returns what a device was pushed: the pushes queued before
	// its answer to a request made now.
	drain := func(d *msgDevice) []*wire.Push {
		t.Helper()
		resp, ps := groupReq(t, d, next(), &wire.Request{Body: &wire.Request_KeyPackageCount{KeyPackageCount: &wire.KeyPackageCountRequest{}}})
		wantCode(t, d.name+": key package count", resp, wire.ErrorCode_OK)
		return ps
	}
	var own []*wire.Push // what alice was pushed while sending
	send := func(content []byte, mid string) uint64 {
		t.Helper()
		resp, ps := groupReq(t, alice, next(), &wire.Request{Body: &wire.Request_GroupSend{GroupSend: &wire.GroupSendRequest{GroupId: g, MessageId: []byte(mid), Content: content}}})
		wantCode(t, "send "+mid, resp, wire.ErrorCode_OK)
		own = append(ps, drain(alice)...)
		return resp.GetGroupSend().Seq
	}
	drain(bob)
	drain(carol)
	drain(alice)

	s1 := send([]byte("hello"), "m1")
	msgs, _ := pushedMessages(drain(bob))
	if len(msgs) != 1 || string(msgs[0].Content) != "hello" || msgs[0].Seq != s1 || msgs[0].PrevSeq != s1-1 ||
		s1-1 != created || msgs[0].Kind != wire.GroupMessageKind_GROUP_MESSAGE || !bytes.Equal(msgs[0].GroupId, g) {
		t.Fatalf("bob was pushed %v, want hello at seq %d after %d", msgs, s1, created)
	}
	if msgs, _ := pushedMessages(own); len(msgs) != 1 || msgs[0].Seq != s1 || len(msgs[0].Content) != 0 {
		t.Fatalf("the sender was pushed %v, want its own seq %d without content", msgs, s1)
	}

	// Too large to push: a plain wake-up, fetched.
	big := bytes.Repeat([]byte("b"), relay.GroupPushInlineMax+1)
	send(big, "m2")
	msgs, wakeups := pushedMessages(drain(bob))
	if len(msgs) != 0 || wakeups != 1 {
		t.Fatalf("a large message was pushed as %d wake-ups carrying %v", wakeups, msgs)
	}

	// alice removes carol and adds dave. carol gets the commit (fetched)
	// and nothing after it.
	drain(carol)
	drain(dave)
	req = &wire.GroupCommitRequest{GroupId: g, Epoch: 1, Commit: []byte("c1"), GroupInfo: []byte("gi1"), Welcome: []byte("welcome-c1"),
		Added: []*wire.GroupDevice{{Username: "dave", DeviceId: dave.id}}, Removed: []*wire.GroupDevice{{Username: "carol", DeviceId: carol.id}}}
	resp, _ = groupReq(t, alice, next(), &wire.Request{Body: &wire.Request_GroupCommit{GroupCommit: req}})
	wantCode(t, "remove carol", resp, wire.ErrorCode_OK)
	c1 := resp.GetGroupCommit().Seq
	s3 := send([]byte("after carol"), "m3")
	msgs, wakeups = pushedMessages(drain(carol))
	if len(msgs) != 0 || wakeups != 1 {
		t.Fatalf("removed carol was pushed %d wake-ups carrying %v, want the commit's wake-up only", wakeups, msgs)
	}
	resp, _ = groupReq(t, carol, next(), &wire.Request{Body: &wire.Request_GroupFetch{GroupFetch: &wire.GroupFetchRequest{}}})
	fetched := resp.GetGroupFetch().GetMessages()
	if n := len(fetched); n == 0 || fetched[n-1].Seq != c1 || fetched[n-1].Kind != wire.GroupMessageKind_GROUP_COMMIT {
		t.Fatalf("carol fetched %v, want up to the commit that removed her (%d)", fetched, c1)
	}

	// dave was pushed the message after his Welcome; a new client does
	// not know where it is, fetches the Welcome in place, then takes in
	// pushes.
	msgs, _ = pushedMessages(drain(dave))
	if len(msgs) != 1 || msgs[0].Seq != s3 || msgs[0].PrevSeq != c1 {
		t.Fatalf("dave was pushed %v, want seq %d after the commit %d", msgs, s3, c1)
	}
	resp, _ = groupReq(t, dave, next(), &wire.Request{Body: &wire.Request_GroupFetch{GroupFetch: &wire.GroupFetchRequest{}}})
	fetched = resp.GetGroupFetch().GetMessages()
	if len(fetched) != 2 || fetched[0].Seq != c1 || fetched[0].Kind != wire.GroupMessageKind_GROUP_WELCOME || string(fetched[0].Content) != "welcome-c1" || fetched[1].Seq != s3 {
		t.Fatalf("dave fetched %v", fetched)
	}
	s4 := send([]byte("to dave"), "m4")
	if msgs, _ := pushedMessages(drain(dave)); len(msgs) != 1 || msgs[0].PrevSeq != s3 || string(msgs[0].Content) != "to dave" || msgs[0].Seq != s4 {
		t.Fatalf("dave was pushed %v", msgs)
	}
}

// Messages sent to a group at once by several members are each pushed
// to a member exactly once, with the seq before it; none waits on the
// relay for a later push.
func TestGroupPushConcurrentSenders(t *testing.T) {
	r := startLimitRelay(t, nil)
	const senders, each = 4, 25
	var ds []*msgDevice
	for i := range senders + 1 {
		ds = append(ds, enrollFrom(t, r, fmt.Sprintf("127.0.1.%d", i+1), fmt.Sprintf("user%d", i)))
	}
	recv := ds[senders]
	g := []byte("group-concurrent")
	var added []*wire.GroupDevice
	for _, d := range ds[1:] {
		added = append(added, &wire.GroupDevice{Username: d.name, DeviceId: d.id})
	}
	resp, _ := groupReq(t, ds[0], 1000, &wire.Request{Body: &wire.Request_GroupCommit{GroupCommit: &wire.GroupCommitRequest{
		GroupId: g, Commit: []byte("c0"), GroupInfo: []byte("gi"), Welcome: []byte("w"), Added: added}}})
	wantCode(t, "create", resp, wire.ErrorCode_OK)
	created := resp.GetGroupCommit().Seq
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i, d := range ds[:senders] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range each {
				id := uint64(2000 + n)
				b, err := wire.EncodeFrame(&wire.Frame{Kind: &wire.Frame_Request{Request: &wire.Request{Id: id, Body: &wire.Request_GroupSend{GroupSend: &wire.GroupSendRequest{
					GroupId: g, MessageId: fmt.Appendf(nil, "%d-%d", i, n), Content: fmt.Appendf(nil, "%d-%d", i, n)}}}}})
				if err == nil {
					err = d.rawConn.c.Write(context.Background(), websocket.MessageBinary, b)
				}
				if err != nil {
					errs <- err
					return
				}
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					_, b, err := d.rawConn.c.Read(ctx)
					cancel()
					var f *wire.Frame
					if err == nil {
						f, err = wire.DecodeFrame(b)
					}
					if err != nil {
						errs <- err
						return
					}
					if rp := f.GetResponse(); rp != nil && rp.Id == id {
						if rp.Code != wire.ErrorCode_OK {
							errs <- fmt.Errorf("send: %v %s", rp.Code, rp.Message)
							return
						}
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	resp, ps := groupReq(t, recv, 3000, &wire.Request{Body: &wire.Request_KeyPackageCount{KeyPackageCount: &wire.KeyPackageCountRequest{}}})
	wantCode(t, "drain", resp, wire.ErrorCode_OK)
	msgs, _ := pushedMessages(ps)
	seen := map[uint64]string{}
	for _, m := range msgs {
		if _, dup := seen[m.Seq]; dup {
			t.Fatalf("seq %d pushed twice", m.Seq)
		}
		if m.PrevSeq != m.Seq-1 {
			t.Fatalf("seq %d pushed with prev %d", m.Seq, m.PrevSeq)
		}
		seen[m.Seq] = string(m.Content)
	}
	if len(seen) != senders*each {
		t.Fatalf("%d messages pushed, want %d", len(seen), senders*each)
	}
	for seq := created + 1; seq <= created+senders*each; seq++ {
		if seen[seq] == "" {
			t.Fatalf("seq %d not pushed", seq)
		}
	}
}
