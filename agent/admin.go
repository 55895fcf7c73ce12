package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"strings"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/org"
	"sotto/client/transport"
	"sotto/release"
)

// The organization's console: what `sotto admin` does, through the agent
// that holds the device's one relay connection (so an admin can run it
// beside `sotto up`, and from the web app). Every endpoint but GET
// /v1/admin answers forbidden unless this device holds the organization's
// key; the client core refuses to sign without it too.

func routeAdmin(mux *http.ServeMux, h *handler) {
	p := api.Prefix + "/admin"
	mux.HandleFunc("GET "+p, h.device(h.adminStatus))
	mux.HandleFunc("POST "+p+"/invitations", h.orgAdmin(h.adminInvite))
	mux.HandleFunc("GET "+p+"/members", h.orgAdmin(h.adminMembers))
	mux.HandleFunc("POST "+p+"/certify", h.orgAdmin(h.adminCertify))
	mux.HandleFunc("POST "+p+"/notices", h.orgAdmin(h.adminNotice))
	mux.HandleFunc("POST "+p+"/member-access", h.orgAdmin(h.adminMemberAccess))
	mux.HandleFunc("GET "+p+"/policy", h.orgAdmin(h.adminPolicy))
	mux.HandleFunc("PUT "+p+"/policy", h.orgAdmin(h.adminSetPolicy))
	mux.HandleFunc("POST "+p+"/wipe", h.orgAdmin(h.adminWipe))
	mux.HandleFunc("GET "+p+"/deliveries", h.orgAdmin(h.adminDeliveries))
	routeAdminRelease(mux, h) // adminrelease.go
}

var errNotAdmin = &api.Error{Kind: api.KindForbidden, Message: "agent: this device does not hold the organization's key: the console is for the admin's device"}

// orgAdmin is online for the console's endpoints: refused (forbidden)
// unless this device holds the organization's key.
func (h *handler) orgAdmin(fn func(*http.Request, *client.Client) (any, error)) http.HandlerFunc {
	return h.online(func(r *http.Request, c *client.Client) (any, error) {
		ok, err := c.IsOrgAdmin(r.Context())
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errNotAdmin
		}
		return fn(r, c)
	})
}

func (h *handler) adminStatus(r *http.Request, c *client.Client) (any, error) {
	ok, err := c.IsOrgAdmin(r.Context())
	if err != nil {
		return nil, err
	}
	st := h.a.Status(r.Context())
	a := api.AdminStatus{Admin: ok}
	if st.Org != nil {
		a.Org = st.Org.Name
	}
	return a, nil
}

func days(d int) (time.Duration, error) {
	switch {
	case d == 0:
		d = 365
	case d < 0 || d > 3650:
		return 0, badRequest("days must be 1 to 3650")
	}
	return time.Duration(d) * 24 * time.Hour, nil
}

func (h *handler) adminInvite(r *http.Request, c *client.Client) (any, error) {
	var req api.InviteRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	valid, err := days(req.Days)
	if err != nil {
		return nil, err
	}
	user := strings.ToLower(strings.TrimSpace(req.User))
	if user == "" {
		return nil, badRequest("missing user")
	}
	p := client.InviteParams{Username: user, Validity: valid, RelayURL: req.Relay}
	if req.RelayCA != "" {
		if b, _ := pem.Decode([]byte(req.RelayCA)); b == nil || b.Type != "CERTIFICATE" {
			return nil, badRequest("relay_ca: want a PEM certificate")
		}
		p.RelayCA = []byte(req.RelayCA)
	}
	if req.RelayPin != "" {
		if p.RelayPin, err = transport.ParsePin(req.RelayPin); err != nil {
			return nil, badRequest("relay_pin: %v", err)
		}
	}
	inv, err := c.Invite(r.Context(), p)
	if err != nil {
		return nil, err
	}
	text, err := inv.Text()
	if err != nil {
		return nil, err
	}
	return api.InviteAnswer{User: user, Invitation: text, Days: int(valid / (24 * time.Hour))}, nil
}

func (h *handler) adminMembers(r *http.Request, c *client.Client) (any, error) {
	ms, err := c.ConsoleMembers(r.Context())
	if err != nil {
		return nil, err
	}
	out := api.OrgMembersAnswer{Members: []api.OrgMember{}}
	for _, m := range ms {
		om := api.OrgMember{User: m.User, Enrolled: m.Enrolled, Invited: m.Invited, CertificateExpires: m.Subscription, Devices: []api.OrgDevice{}}
		if m.Renewed.After(om.CertificateExpires) {
			om.CertificateExpires = m.Renewed
		}
		if m.Enrolled {
			sum := sha256.Sum256(m.IdentityKey)
			om.IdentityKey = hex.EncodeToString(sum[:16])
			ds, err := c.UserDevices(r.Context(), m.User)
			if err != nil {
				om.DevicesErr = api.ErrorOf(err).Message
			}
			for _, d := range ds {
				om.Devices = append(om.Devices, api.OrgDevice{ID: d.ID, Created: d.Created})
			}
		}
		out.Members = append(out.Members, om)
	}
	return out, nil
}

func (h *handler) adminCertify(r *http.Request, c *client.Client) (any, error) {
	var req api.CertifyRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	valid, err := days(req.Days)
	if err != nil {
		return nil, err
	}
	if req.ValidSeconds != 0 {
		valid = time.Duration(req.ValidSeconds) * time.Second
		if req.ValidSeconds < 0 || valid > 3650*24*time.Hour {
			return nil, badRequest("valid_seconds must be 1 to 3650 days' worth")
		}
	}
	if strings.TrimSpace(req.User) == "" {
		return nil, badRequest("missing user")
	}
	n, err := c.Certify(r.Context(), req.User, valid)
	if err != nil {
		return nil, err
	}
	return api.PublishAnswer{Devices: n}, nil
}

// adminMemberAccess publishes a new member access key
// (client.PublishMemberAccess): again when someone leaves.
func (h *handler) adminMemberAccess(r *http.Request, c *client.Client) (any, error) {
	n, err := c.PublishMemberAccess(r.Context())
	if err != nil {
		return nil, err
	}
	return api.PublishAnswer{Devices: n}, nil
}

func (h *handler) adminNotice(r *http.Request, c *client.Client) (any, error) {
	var req api.NoticeRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Text) == "" {
		return nil, badRequest("empty notice")
	}
	n, err := c.PublishNotice(r.Context(), req.Text)
	if err != nil {
		return nil, err
	}
	return api.PublishAnswer{Devices: n}, nil
}

func (h *handler) adminPolicy(r *http.Request, c *client.Client) (any, error) {
	p, err := c.OrgPolicy(r.Context())
	if err != nil {
		return nil, err
	}
	return api.Policy{Version: p.GetVersion(), FailedUnlockLimit: uint32(p.UnlockLimit()), IdleLockSeconds: p.GetIdleLockSeconds(),
		DisappearingMinSecs: p.GetDisappearingMinSeconds(), DisappearingMaxSecs: p.GetDisappearingMaxSeconds(),
		AttachmentsDisabled: !p.AttachmentsAllowed(), CallsDisabled: !p.CallsAllowed(), SealedOnly: !p.SealedFallbackAllowed(),
		MinPassphraseBits: p.GetMinPassphraseBits(), WitnessBoundSeconds: p.GetWitnessBoundSeconds(), MinClientVersion: p.GetMinClientVersion()}, nil
}

// maxPolicySeconds bounds a policy's durations as the CLI does (ten years).
const maxPolicySeconds = 10 * 365 * 24 * 3600

func (h *handler) adminSetPolicy(r *http.Request, c *client.Client) (any, error) {
	var req api.Policy
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	for _, s := range []uint32{req.IdleLockSeconds, req.DisappearingMinSecs, req.DisappearingMaxSecs, req.WitnessBoundSeconds} {
		if s > maxPolicySeconds {
			return nil, badRequest("a duration over ten years")
		}
	}
	if req.DisappearingMaxSecs != 0 && req.DisappearingMinSecs > req.DisappearingMaxSecs {
		return nil, badRequest("the shortest disappearing timer is longer than the longest")
	}
	if req.MinClientVersion != "" {
		if _, err := release.ParseVersion(req.MinClientVersion); err != nil {
			return nil, badRequest("min_client_version: %v", err)
		}
	}
	p := &org.Policy{Version: req.Version, FailedUnlockLimit: req.FailedUnlockLimit, IdleLockSeconds: req.IdleLockSeconds,
		DisappearingMinSeconds: req.DisappearingMinSecs, DisappearingMaxSeconds: req.DisappearingMaxSecs,
		AttachmentsDisabled: req.AttachmentsDisabled, CallsDisabled: req.CallsDisabled, SealedOnly: req.SealedOnly,
		MinPassphraseBits: req.MinPassphraseBits, WitnessBoundSeconds: req.WitnessBoundSeconds, MinClientVersion: req.MinClientVersion}
	n, err := c.PublishPolicy(r.Context(), p)
	if err != nil {
		return nil, err
	}
	return api.PublishAnswer{Devices: n}, nil
}

func (h *handler) adminWipe(r *http.Request, c *client.Client) (any, error) {
	var req api.WipeRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	valid := 7 * 24 * time.Hour
	if req.ValidSeconds != 0 {
		valid = time.Duration(req.ValidSeconds) * time.Second
	}
	if valid <= 0 || valid > org.MaxWipeValidity {
		return nil, badRequest("valid_seconds out of range")
	}
	if strings.TrimSpace(req.User) == "" || req.Device == 0 {
		return nil, badRequest("missing user or device")
	}
	n, err := c.OrgWipe(r.Context(), strings.TrimSpace(req.User), req.Device, valid)
	if err != nil {
		return nil, err
	}
	return api.PublishAnswer{Devices: n}, nil
}

func (h *handler) adminDeliveries(r *http.Request, c *client.Client) (any, error) {
	limit, err := intParam(r, "limit", 20)
	if err != nil {
		return nil, err
	}
	ds, err := c.Deliveries(r.Context(), limit)
	if err != nil {
		return nil, err
	}
	out := api.DeliveriesAnswer{Deliveries: []api.Delivery{}}
	for _, d := range ds {
		if d.Applied == nil {
			d.Applied = []string{}
		}
		out.Deliveries = append(out.Deliveries, api.Delivery{ID: d.ID, Kind: d.Kind, At: d.At, User: d.User, Device: d.Device,
			Queued: d.Queued, Applied: d.Applied, Bad: d.Bad})
	}
	return out, nil
}
