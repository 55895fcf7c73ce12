package agent

import (
	"net/http"

	"sotto/agent/api"
	"sotto/client"
)

// Linking a new device from a running agent: the new device (`sotto
// devices link`) shows a link code; this device reads the name the code
// carries (so the person sees which device asks), then approves it,
// handing over the account (and, if asked, the history).

func routeLink(mux *http.ServeMux, h *handler) {
	p := api.Prefix + "/devices"
	mux.HandleFunc("POST "+p+"/link/check", h.device(h.linkCheck))
	mux.HandleFunc("POST "+p+"/link/approve", h.online(h.linkApprove))
	mux.HandleFunc("POST "+p+"/history/import", h.online(h.importHistory))
	mux.HandleFunc("POST "+api.Prefix+"/contacts/{user}/scan", h.online(h.scanVerify)) // scan.go
}

func linkCode(r *http.Request) (api.LinkRequest, string, error) {
	var req api.LinkRequest
	if err := decode(r, &req); err != nil {
		return req, "", err
	}
	name, err := client.LinkCodeName(req.Code)
	if err != nil {
		return req, "", badRequest("%v", err)
	}
	return req, name, nil
}

func (h *handler) linkCheck(r *http.Request, _ *client.Client) (any, error) {
	_, name, err := linkCode(r)
	if err != nil {
		return nil, err
	}
	return api.LinkCheckAnswer{Name: name}, nil
}

func (h *handler) linkApprove(r *http.Request, c *client.Client) (any, error) {
	req, name, err := linkCode(r)
	if err != nil {
		return nil, err
	}
	sum, err := c.ApproveLinkWith(r.Context(), req.Code, client.ApproveOptions{History: req.History})
	if err != nil {
		return nil, err
	}
	a := api.LinkApproveAnswer{Name: name}
	if sum != nil {
		a.History = &api.LinkHistory{Messages: sum.Messages, Conversations: sum.Conversations, Contacts: sum.Contacts, Omitted: sum.Omitted}
	}
	return a, nil
}

// importHistory imports, on the new device, the history the approving
// device sent at linking and left pending (devices link --defer-history,
// or an import that failed): downloaded from the relay, checked, stored
// in one transaction that also drops the pending pointer, so a second
// import finds nothing pending and nothing is stored twice.
func (h *handler) importHistory(r *http.Request, c *client.Client) (any, error) {
	sum, err := c.ImportHistory(r.Context())
	if err != nil {
		return nil, err
	}
	return api.HistoryImportAnswer{Messages: sum.Messages, Conversations: sum.Conversations, Contacts: sum.Contacts, Expired: sum.Expired}, nil
}
