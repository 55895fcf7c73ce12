package agent

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"sotto/agent/api"
)

// A device that does not hold the organization's key is refused the
// release console through its agent (forbidden, errNotAdmin) before the
// agent fetches anything or signs: the mirror named here does not exist,
// so without the admin check the answer would be the failed fetch's.
// Likewise invitations and certificates with their new fields.
func TestAdminReleaseRefusedToMember(t *testing.T) {
	r := startRelay(t)
	bob := startAgent(t, r.enroll(t, "bob"))
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "no-mirror")
	key := strings.Repeat("ab", 32)
	for _, c := range []struct {
		method, path string
		in           any
	}{
		{http.MethodPost, "/admin/releases/approve", api.ReleaseApproveRequest{Version: "v1.0.0", WitnessKey: key, From: missing, ReleaseKey: key}},
		{http.MethodGet, "/admin/releases/devices?from=" + missing + "&release_key=" + key, nil},
		{http.MethodPost, "/admin/certify", api.CertifyRequest{User: "bob", ValidSeconds: 3600}},
		{http.MethodPost, "/admin/invitations", api.InviteRequest{User: "carol", RelayPin: "zz"}},
	} {
		err := bob.api.Do(ctx, c.method, c.path, c.in, nil)
		if !api.IsKind(err, api.KindForbidden) || !strings.Contains(err.Error(), errNotAdmin.Message) {
			t.Errorf("%s %s: %v, want forbidden: %s", c.method, c.path, err, errNotAdmin.Message)
		}
	}
}
