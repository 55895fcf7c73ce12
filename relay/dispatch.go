package relay

import (
	"fmt"
	"reflect"

	"sotto/wire"
)

// One flat table from request kind to handler. A feature adds its
// requests by adding its entries (a new file declares a func returning
// []route and newRoutes lists it); nothing else changes.

// handler answers one request: it fills resp.Body or returns an error
// (mapped to a wire code by errors.go).
type handler func(c *conn, req *wire.Request, resp *wire.Response) error

// access says on which connections a request is served.
type access uint8

const (
	// authedOnly: only once the connection logged in (UNAUTHENTICATED before).
	authedOnly access = iota
	// anyConn: also before logging in (login itself, ping, provisioning,
	// sealed sends; each checks what it needs).
	anyConn
)

// route is one entry of the table.
type route struct {
	body   any // a zero value of the Request body's oneof wrapper type
	access access
	handle handler
}

// routes maps the Request body's type to its route.
type routes map[reflect.Type]route

// newRoutes builds the table from every feature's entries.
func newRoutes() routes {
	t := routes{}
	for _, list := range [][]route{coreRoutes(), orgRoutes(), transparencyRoutes(), sealedRoutes(), groupRoutes(), buildRoutes()} {
		for _, r := range list {
			k := reflect.TypeOf(r.body)
			if _, dup := t[k]; dup {
				panic(fmt.Sprintf("relay: two routes for %v", k)) // a programming error, caught by every test
			}
			t[k] = r
		}
	}
	return t
}

// dispatch runs the handler of req.
func (c *conn) dispatch(req *wire.Request, resp *wire.Response) error {
	r, ok := c.s.routes[reflect.TypeOf(req.Body)]
	switch {
	case !ok && !c.authed, ok && r.access == authedOnly && !c.authed:
		return ErrUnauthenticated
	case !ok:
		return badRequest("unknown request")
	}
	return r.handle(c, req, resp)
}

// coreRoutes are the requests of login, devices, prekeys and messages.
func coreRoutes() []route {
	return []route{
		{&wire.Request_Ping{}, anyConn, func(c *conn, _ *wire.Request, resp *wire.Response) error {
			resp.Body = &wire.Response_Ping{Ping: &wire.PingResponse{ServerTimeMs: c.s.cfg.Now().UnixMilli()}}
			return nil
		}},
		{&wire.Request_Enroll{}, anyConn, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.enroll(req.GetEnroll())
			if err == nil {
				r.SealedTrustRoot = c.s.sealedTrustRoot()
				resp.Body = &wire.Response_Enroll{Enroll: r}
			}
			return err
		}},
		{&wire.Request_Authenticate{}, anyConn, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.authenticate(req.GetAuthenticate())
			if err == nil {
				resp.Body = &wire.Response_Authenticate{Authenticate: r}
			}
			return err
		}},
		{&wire.Request_LinkDevice{}, anyConn, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.linkDevice(req.GetLinkDevice())
			if err == nil {
				r.SealedTrustRoot = c.s.sealedTrustRoot()
				resp.Body = &wire.Response_LinkDevice{LinkDevice: r}
			}
			return err
		}},
		{&wire.Request_Provision{}, anyConn, func(c *conn, _ *wire.Request, resp *wire.Response) error {
			r, err := c.provision()
			if err == nil {
				resp.Body = &wire.Response_Provision{Provision: r}
			}
			return err
		}},
		{&wire.Request_UploadPrekeys{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			resp.Body = &wire.Response_UploadPrekeys{UploadPrekeys: &wire.UploadPreKeysResponse{}}
			return c.uploadPreKeys(req.GetUploadPrekeys())
		}},
		{&wire.Request_PrekeyCount{}, authedOnly, func(c *conn, _ *wire.Request, resp *wire.Response) error {
			r, err := c.preKeyCount()
			if err == nil {
				resp.Body = &wire.Response_PrekeyCount{PrekeyCount: r}
			}
			return err
		}},
		{&wire.Request_FetchPrekeys{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.fetchPreKeys(req.GetFetchPrekeys())
			if err == nil {
				resp.Body = &wire.Response_FetchPrekeys{FetchPrekeys: r}
			}
			return err
		}},
		{&wire.Request_GetDevices{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.getDevices(req.GetGetDevices().GetUsername())
			if err == nil {
				resp.Body = &wire.Response_GetDevices{GetDevices: r}
			}
			return err
		}},
		{&wire.Request_GetIdentity{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.getIdentity(req.GetGetIdentity())
			if err == nil {
				resp.Body = &wire.Response_GetIdentity{GetIdentity: r}
			}
			return err
		}},
		{&wire.Request_SendMessage{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			return c.sendNow(namedSend(req.GetSendMessage()), resp)
		}},
		{&wire.Request_Ack{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			resp.Body = &wire.Response_Ack{Ack: &wire.AckResponse{}}
			return c.ack(req.GetAck())
		}},
		{&wire.Request_LinkToken{}, authedOnly, func(c *conn, _ *wire.Request, resp *wire.Response) error {
			r, err := c.linkToken()
			if err == nil {
				resp.Body = &wire.Response_LinkToken{LinkToken: r}
			}
			return err
		}},
		{&wire.Request_SendProvisioning{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			resp.Body = &wire.Response_SendProvisioning{SendProvisioning: &wire.SendProvisioningResponse{}}
			return c.sendProvisioning(req.GetSendProvisioning())
		}},
		{&wire.Request_ListDevices{}, authedOnly, func(c *conn, _ *wire.Request, resp *wire.Response) error {
			devs, err := c.s.dir.Devices(c.ctx, c.dev.Account, false)
			if err == nil {
				resp.Body = &wire.Response_ListDevices{ListDevices: deviceList(c.username, devs, true)}
			}
			return err
		}},
		{&wire.Request_RemoveDevice{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			resp.Body = &wire.Response_RemoveDevice{RemoveDevice: &wire.RemoveDeviceResponse{}}
			return c.removeDevice(req.GetRemoveDevice().GetDeviceId())
		}},
		{&wire.Request_TurnCredentials{}, authedOnly, func(c *conn, _ *wire.Request, resp *wire.Response) error {
			r, err := c.turnCredentials()
			if err == nil {
				resp.Body = &wire.Response_TurnCredentials{TurnCredentials: r}
			}
			return err
		}},
		{&wire.Request_BlobToken{}, authedOnly, func(c *conn, _ *wire.Request, resp *wire.Response) error {
			r, err := c.blobToken()
			if err == nil {
				resp.Body = &wire.Response_BlobToken{BlobToken: r}
			}
			return err
		}},
	}
}

// sealedRoutes are the sealed sender's requests (sealed.go, send.go).
func sealedRoutes() []route {
	return []route{
		{&wire.Request_SealedSend{}, anyConn, func(c *conn, req *wire.Request, resp *wire.Response) error {
			return c.sendNow(sealedSend(req.GetSealedSend()), resp)
		}},
		{&wire.Request_SetAccessKey{}, authedOnly, (*conn).handleSetAccessKey},
		{&wire.Request_SenderCertificate{}, authedOnly, (*conn).handleSenderCertificate},
	}
}
