package agent

import (
	"context"
	"net/http"

	"sotto/agent/api"
	"sotto/client"
)

// The API of calls in the browser (webcalls.go; docs/agent-api.md).

func routeWebCalls(mux *http.ServeMux, h *handler) {
	p := api.Prefix
	mux.HandleFunc("GET "+p+"/webcalls/events", h.webCallStream)
	mux.HandleFunc("GET "+p+"/webcalls/ice", h.online(h.webICE))
	mux.HandleFunc("POST "+p+"/webcalls", h.online(h.webDial))
	mux.HandleFunc("POST "+p+"/webcalls/{id}/answer", h.online(h.webAnswer))
	mux.HandleFunc("POST "+p+"/webcalls/{id}/connected", h.device(h.webConnected))
	mux.HandleFunc("POST "+p+"/webcalls/{id}/hangup", h.online(h.webHangup))
}

func (h *handler) webICE(r *http.Request, _ *client.Client) (any, error) {
	return h.a.web.ice(r.Context())
}

func (h *handler) webDial(r *http.Request, _ *client.Client) (any, error) {
	var req api.WebDialRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	c, err := h.a.web.dial(r.Context(), req.User, req.SDP)
	if err != nil {
		return nil, err
	}
	return api.WebCallAnswer{Call: c}, nil
}

func (h *handler) webAnswer(r *http.Request, _ *client.Client) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	var req api.WebAnswerRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	c, err := h.a.web.answer(r.Context(), id, req.SDP)
	if err != nil {
		return nil, err
	}
	return api.WebCallAnswer{Call: c}, nil
}

func (h *handler) webConnected(r *http.Request, _ *client.Client) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	var req api.WebConnectedRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	c, err := h.a.web.connected(id, req)
	if err != nil {
		return nil, err
	}
	return api.WebCallAnswer{Call: c}, nil
}

func (h *handler) webHangup(r *http.Request, _ *client.Client) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	var req api.WebHangupRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return nil, err
		}
	}
	return nil, h.a.web.hangup(id, req.Failed)
}

// webCallStream serves GET /v1/webcalls/events (server-sent events, event
// webcall): the calls live when it opens, then every change. While a page
// holds it, the device's incoming calls ring there.
func (h *handler) webCallStream(w http.ResponseWriter, r *http.Request) {
	if h.a.c.Locked() {
		writeError(w, errLocked)
		return
	}
	if h.a.calls == nil {
		writeError(w, errNoCalls)
		return
	}
	ch, live, cancel := h.a.web.subscribe()
	defer cancel()
	out, ok := startSSE(w)
	if !ok {
		return
	}
	write := func(e api.WebCallEvent) error { return out.event("", "webcall", e) }
	// A comment first: the page's EventSource is open once it arrives.
	if out.comment("open") != nil {
		return
	}
	for _, e := range live {
		if write(e) != nil {
			return
		}
	}
	// The stream also ends with the agent's web calls.
	ctx, end := context.WithCancel(r.Context())
	defer end()
	defer context.AfterFunc(h.a.web.ctx, end)()
	stream(ctx, out, ch, h.a.stop, write)
}
