package main

import (
	"context"
	"strings"
	"testing"
)

// Group mode against a real relay, small: the 1:1 and group phases run,
// the group is created over the relay and grown, and the sample member
// decrypts exactly the creator's messages (the run fails otherwise).
func TestGroupAgainstRealRelay(t *testing.T) {
	url, data := startRelay(t)
	var out, errb strings.Builder
	rc := run(context.Background(), []string{"group", "-relay", url, "-data", data, "-members", "6", "-add", "2", "-sample", "1",
		"-senders", "2", "-real", "2", "-duration", "300ms"}, &out, &errb)
	if rc != 0 {
		t.Fatalf("exit %d:\n%s\n%s", rc, out.String(), errb.String())
	}
	for _, want := range []string{"1:1: ", "create a group of 6 devices", "group: ", "the 1:1 rate", "add 2 devices",
		"decrypted the creator's 2 messages", "the group has 8 devices at epoch 2"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("no %q in:\n%s", want, out.String())
		}
	}
	if rc := run(context.Background(), []string{"group", "-relay", url, "-data", data, "-members", "3", "-sample", "2"}, &out, &errb); rc != 2 {
		t.Fatalf("a group too small for its sample: exit %d", rc)
	}
}
