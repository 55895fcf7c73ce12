package agent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/groups"
)

// The group messaging features: replies (groupSend), reactions, edits,
// deletes, timers, files, read marks (docs/agent-api.md, Group messages).

func routeGroupMessages(mux *http.ServeMux, h *handler) {
	p := api.Prefix
	mux.HandleFunc("POST "+p+"/groups/{group}/messages/{id}/react", h.groupsOnline(h.groupReact))
	mux.HandleFunc("POST "+p+"/groups/{group}/messages/{id}/edit", h.groupsOnline(h.groupEdit))
	mux.HandleFunc("DELETE "+p+"/groups/{group}/messages/{id}", h.groupsOnline(h.groupDelete))
	mux.HandleFunc("POST "+p+"/groups/{group}/messages/{id}/download", h.groupsOnline(h.groupDownload))
	mux.HandleFunc("GET "+p+"/groups/{group}/messages/{id}/content", h.groupContent)
	mux.HandleFunc("POST "+p+"/groups/{group}/timer", h.groupsOnline(h.groupTimer))
	mux.HandleFunc("POST "+p+"/groups/{group}/files", h.groupsOnline(h.groupFile))
	mux.HandleFunc("POST "+p+"/groups/{group}/read", h.groupsOnline(h.groupRead))
}

func pathGroupMessage(r *http.Request) (api.ID, api.ID, error) {
	g, err := pathGroup(r)
	if err != nil {
		return nil, nil, err
	}
	id, err := pathID(r)
	return g, id, err
}

func messageAnswer(msg *groups.Message, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return api.GroupMessageAnswer{Message: api.FromGroupMessage(msg)}, nil
}

func (h *handler) groupReact(r *http.Request, m *groups.Manager) (any, error) {
	g, id, err := pathGroupMessage(r)
	if err != nil {
		return nil, err
	}
	var req api.GroupReactRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return messageAnswer(m.React(r.Context(), g, id, req.Emoji))
}

func (h *handler) groupEdit(r *http.Request, m *groups.Manager) (any, error) {
	g, id, err := pathGroupMessage(r)
	if err != nil {
		return nil, err
	}
	var req api.GroupEditRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Text == "" {
		return nil, badRequest("empty text (delete the message instead)")
	}
	return messageAnswer(m.Edit(r.Context(), g, id, req.Text))
}

func (h *handler) groupDelete(r *http.Request, m *groups.Manager) (any, error) {
	g, id, err := pathGroupMessage(r)
	if err != nil {
		return nil, err
	}
	return messageAnswer(m.Delete(r.Context(), g, id))
}

func (h *handler) groupTimer(r *http.Request, m *groups.Manager) (any, error) {
	g, err := pathGroup(r)
	if err != nil {
		return nil, err
	}
	var req api.GroupTimerRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return messageAnswer(m.SetTimer(r.Context(), g, time.Duration(req.Seconds)*time.Second))
}

func (h *handler) groupFile(r *http.Request, m *groups.Manager) (any, error) {
	g, err := pathGroup(r)
	if err != nil {
		return nil, err
	}
	var req api.GroupFileRequest
	u, err := h.fileRequest(r, &req, func() string { return req.Path })
	if err != nil {
		return nil, err
	}
	if u != nil {
		defer u.Close()
		if u.ViewOnce {
			return nil, client.ErrGroupViewOnce
		}
		req.Path, req.Caption = u.Path, u.Caption
	}
	return messageAnswer(h.a.c.SendGroupFile(r.Context(), m, g, req.Path, client.FileOptions{Caption: req.Caption}))
}

// groupDownload writes a group file at an absolute path that does not
// exist yet (through a temporary file beside it: nothing is left of a
// tampered or truncated blob).
func (h *handler) groupDownload(r *http.Request, m *groups.Manager) (any, error) {
	g, id, err := pathGroupMessage(r)
	if err != nil {
		return nil, err
	}
	var req api.GroupDownloadRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(req.Out) {
		return nil, badRequest("out %q is not absolute", req.Out)
	}
	if _, err := os.Lstat(req.Out); !errors.Is(err, os.ErrNotExist) {
		return nil, badRequest("%s exists already", req.Out)
	}
	tmp, err := os.CreateTemp(filepath.Dir(req.Out), ".sotto-download-*")
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	msg, err := h.a.c.DownloadGroupFile(r.Context(), m, g, id, tmp)
	if err != nil {
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := os.Rename(tmp.Name(), req.Out); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	ok = true
	return api.DownloadGroupAnswer{Path: req.Out, Message: api.FromGroupMessage(msg)}, nil
}

// groupContent answers the decrypted bytes of a group message's file, as
// GET /v1/attachments/{id}/content does for a 1:1 one.
func (h *handler) groupContent(w http.ResponseWriter, r *http.Request) {
	if !h.rawDevice(w, r) {
		return
	}
	msg, m, err := func() (*groups.Message, *groups.Manager, error) {
		g, id, err := pathGroupMessage(r)
		if err != nil {
			return nil, nil, err
		}
		m, err := h.a.groups(r.Context())
		if err != nil {
			return nil, nil, err
		}
		msg, err := m.Message(r.Context(), g, id)
		if err == nil && (msg.Attachment == nil || msg.Deleted) {
			err = client.ErrGroupNoFile
		}
		return msg, m, err
	}()
	if err != nil {
		writeError(w, err)
		return
	}
	a := msg.Attachment
	streamFile(w, a.Name, a.ContentType, func(dst io.Writer) error {
		_, err := h.a.c.DownloadGroupFile(r.Context(), m, msg.Group, msg.ID, dst)
		return err
	})
}

func (h *handler) groupRead(r *http.Request, m *groups.Manager) (any, error) {
	g, err := pathGroup(r)
	if err != nil {
		return nil, err
	}
	n, err := m.MarkRead(r.Context(), g)
	if err != nil {
		return nil, err
	}
	return api.GroupReadAnswer{Marked: n}, nil
}
