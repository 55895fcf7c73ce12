package main

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"sotto/agent/api"
	"sotto/client"
)

// Beside a running agent, `sotto admin notice|wipe|delivery|policy
// set|member-access` go through its API (/v1/admin/…, docs/agent-api.md)
// instead of being refused: the agent holds the device's one relay
// connection. Without an agent they connect by themselves as before.
// `admin invite`, `admin members certify`, `admin release approve` and
// `admin devices` always go through an agent (env.session): the running
// one, or one served in this process.

// viaAgent runs an admin call through the running agent; ok is false when
// no agent runs (the caller connects by itself).
func viaAgent(e *env, method, path string, in, out any) (s *session, ok bool, err error) {
	s, err = e.join()
	if err != nil || s == nil {
		return nil, false, err
	}
	if err := s.api.Do(e.ctx, method, path, in, out); err != nil {
		s.close()
		return nil, true, agentError(e, err)
	}
	return s, true, nil
}

// waitDeliveryAgent is waitDelivery through the agent.
func waitDeliveryAgent(e *env, s *session, d time.Duration, asJSON bool) error {
	if d <= 0 {
		if !asJSON {
			fmt.Fprintln(e.stdout, "(sotto admin delivery shows how many devices applied it)")
		}
		return nil
	}
	deadline := time.Now().Add(d)
	for {
		var a api.DeliveriesAnswer
		if err := s.api.Do(e.ctx, http.MethodGet, "/admin/deliveries?limit=1", nil, &a); err != nil {
			return agentError(e, err)
		}
		if len(a.Deliveries) == 1 && (len(a.Deliveries[0].Applied) >= a.Deliveries[0].Queued || !time.Now().Before(deadline)) {
			d := fromAPIDelivery(a.Deliveries[0])
			if asJSON {
				return emit(e, true, d, "")
			}
			fmt.Fprintln(e.stdout, deliveryLine(d))
			return nil
		}
		select {
		case <-e.ctx.Done():
			return e.ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func fromAPIDelivery(d api.Delivery) client.Delivery {
	return client.Delivery{ID: d.ID, Kind: d.Kind, At: d.At, User: d.User, Device: d.Device, Queued: d.Queued, Applied: d.Applied, Bad: d.Bad}
}

func noticeViaAgent(e *env, text string, wait time.Duration, asJSON bool) (bool, error) {
	var a api.PublishAnswer
	s, ok, err := viaAgent(e, http.MethodPost, "/admin/notices", api.NoticeRequest{Text: text}, &a)
	if !ok || err != nil {
		return ok, err
	}
	defer s.close()
	if err := emit(e, asJSON, map[string]int{"devices": a.Devices}, fmt.Sprintf("notice signed and queued for %d devices\n", a.Devices)); err != nil {
		return true, err
	}
	return true, waitDeliveryAgent(e, s, wait, asJSON)
}

func wipeViaAgent(e *env, user string, id uint64, valid, wait time.Duration, asJSON bool) (bool, error) {
	var a api.PublishAnswer
	s, ok, err := viaAgent(e, http.MethodPost, "/admin/wipe", api.WipeRequest{User: user, Device: uint32(id), ValidSeconds: int64(valid / time.Second)}, &a)
	if !ok || err != nil {
		return ok, err
	}
	defer s.close()
	if err := emit(e, asJSON, map[string]any{"user": user, "device": id, "queued": true},
		fmt.Sprintf("wipe order for %s device %d signed and queued: the device wipes itself when it next connects\n", user, id)); err != nil {
		return true, err
	}
	return true, waitDeliveryAgent(e, s, wait, asJSON)
}

func deliveryViaAgent(e *env, limit int, asJSON bool) (bool, error) {
	var a api.DeliveriesAnswer
	s, ok, err := viaAgent(e, http.MethodGet, "/admin/deliveries?limit="+strconv.Itoa(limit), nil, &a)
	if !ok || err != nil {
		return ok, err
	}
	defer s.close()
	ds := make([]client.Delivery, 0, len(a.Deliveries))
	for _, d := range a.Deliveries {
		ds = append(ds, fromAPIDelivery(d))
	}
	if asJSON {
		return true, emit(e, true, ds, "")
	}
	if len(ds) == 0 {
		fmt.Fprintln(e.stdout, "nothing published from this device")
	}
	for _, d := range ds {
		fmt.Fprintln(e.stdout, deliveryLine(d))
	}
	return true, nil
}
