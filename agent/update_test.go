package agent

import (
	"context"
	"net/http"
	"testing"

	"sotto/agent/api"
)

// The history import and update endpoints answer with the API's kinds: no
// pending history is not_found; a relative mirror or binary is refused
// before anything is fetched (the release checks themselves need a build
// with a pinned release key: they run end to end in
// cmd/sotto/testdata/update/agentupdate.txt).
func TestImportAndUpdateKinds(t *testing.T) {
	r := startRelay(t)
	bob := startAgent(t, r.enroll(t, "bob"))
	ctx := context.Background()
	for _, c := range []struct {
		path string
		in   any
		kind api.Kind
	}{
		{"/devices/history/import", nil, api.KindNotFound},
		{"/update/check", api.UpdateRequest{From: "relative/mirror"}, api.KindBadRequest},
		{"/update/apply", api.UpdateRequest{Binary: "bin/sotto"}, api.KindBadRequest},
		{"/update/apply", api.UpdateRequest{From: t.TempDir()}, api.KindBadRequest},
	} {
		err := bob.api.Do(ctx, http.MethodPost, c.path, c.in, nil)
		if !api.IsKind(err, c.kind) {
			t.Errorf("%s %+v: %v, want %s", c.path, c.in, err, c.kind)
		}
	}
}
