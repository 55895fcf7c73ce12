package api

import (
	"errors"
	"time"

	"sotto/client"
)

// Event types (docs/agent-api.md, Events).
const (
	EventMessage           = "message"
	EventUpdate            = "update"
	EventExpired           = "expired"
	EventReceipt           = "receipt"
	EventTyping            = "typing"
	EventIdentityChanged   = "identity_changed"
	EventSealedDowngrade   = "sealed_downgrade"
	EventOrgNotice         = "org_notice"
	EventOrgPolicy         = "org_policy"
	EventOrgRejected       = "org_rejected"
	EventTransparencyAlarm = "transparency_alarm"
	EventError             = "error"
	EventWiped             = "wiped"
	EventConnection        = "connection"
	EventIdle              = "idle"
	EventLocked            = "locked"
	EventUnlocked          = "unlocked"
	EventProgress          = "progress"
	// Groups (the agent's own events, from client/groups).
	EventGroupMessage = "group_message"
	EventGroupUpdate  = "group_update"
	EventGroupRefused = "group_refused"
	// Calls (an agent that carries them: docs/agent-api.md, Calls).
	EventCallIncoming  = "call_incoming"
	EventCallConnected = "call_connected"
	EventCallEnded     = "call_ended"
)

// Event is one event of the stream (GET /v1/events).
type Event struct {
	Seq       uint64    `json:"seq"`
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	Message   *Message  `json:"message,omitempty"`
	Receipt   *Receipt  `json:"receipt,omitempty"`
	User      string    `json:"user,omitempty"`
	Typing    bool      `json:"typing,omitempty"`
	Device    uint32    `json:"device,omitempty"`
	Notice    *Notice   `json:"notice,omitempty"`
	Alarm     *Alarm    `json:"alarm,omitempty"`
	Connected bool      `json:"connected,omitempty"`
	Progress  *Progress `json:"progress,omitempty"`
	Error     *Error    `json:"error,omitempty"`
	// Groups: group_message carries group_message; group_update and
	// group_refused carry group, detail and (group_update) change.
	GroupMessage *GroupMessage `json:"group_message,omitempty"`
	Group        ID            `json:"group,omitempty"`
	Change       string        `json:"change,omitempty"`
	Detail       string        `json:"detail,omitempty"`
	// Calls: call_incoming, call_connected and call_ended carry call.
	Call *Call `json:"call,omitempty"`
}

// FromEvent converts an event of the client core; ok is false for the
// kinds the API does not stream (call signalling, which stays with the
// process that runs the call).
func FromEvent(ev client.Event) (e Event, ok bool) {
	switch ev.Kind {
	case client.EventMessage:
		e.Type = EventMessage
	case client.EventUpdate:
		e.Type = EventUpdate
	case client.EventExpired:
		e.Type = EventExpired
	case client.EventReceipt:
		e.Type = EventReceipt
	case client.EventTyping:
		e.Type = EventTyping
	case client.EventIdentityChanged:
		e.Type = EventIdentityChanged
	case client.EventSealedDowngrade:
		e.Type = EventSealedDowngrade
	case client.EventOrgNotice:
		e.Type = EventOrgNotice
	case client.EventOrgPolicy:
		e.Type = EventOrgPolicy
	case client.EventOrgRejected:
		e.Type = EventOrgRejected
	case client.EventTransparencyAlarm:
		e.Type = EventTransparencyAlarm
		var a *client.TransparencyAlarm
		if errors.As(ev.Err, &a) {
			e.Alarm = &Alarm{Kind: string(a.Kind), Detail: a.Detail, User: a.User, Time: a.Time}
		} else if ev.Err != nil {
			e.Alarm = &Alarm{Kind: "unknown", Detail: ev.Err.Error()}
		}
		ev.Err = nil
	case client.EventError:
		e.Type = EventError
	case client.EventWiped:
		e.Type = EventWiped
	default:
		return Event{}, false
	}
	e.Message = FromMessage(ev.Message)
	if r := ev.Receipt; r != nil {
		e.Receipt = &Receipt{From: r.From, FromDevice: r.FromDevice, Read: r.Read}
		for _, id := range r.IDs {
			e.Receipt.IDs = append(e.Receipt.IDs, id)
		}
	}
	e.User, e.Typing, e.Device, e.Notice = ev.User, ev.Typing, ev.Device, ev.Notice
	if ev.Err != nil {
		e.Error = ErrorOf(ev.Err)
	}
	return e, true
}

// Client converts e back to the client core's event, for front ends that
// show events as the core reports them; ok is false for the agent's own
// event types (connection, idle, locked, unlocked) and unknown ones.
func (e *Event) Client() (ev client.Event, ok bool) {
	switch e.Type {
	case EventMessage:
		ev.Kind = client.EventMessage
	case EventUpdate:
		ev.Kind = client.EventUpdate
	case EventExpired:
		ev.Kind = client.EventExpired
	case EventReceipt:
		ev.Kind = client.EventReceipt
	case EventTyping:
		ev.Kind = client.EventTyping
	case EventIdentityChanged:
		ev.Kind = client.EventIdentityChanged
	case EventSealedDowngrade:
		ev.Kind = client.EventSealedDowngrade
	case EventOrgNotice:
		ev.Kind = client.EventOrgNotice
	case EventOrgPolicy:
		ev.Kind = client.EventOrgPolicy
	case EventOrgRejected:
		ev.Kind = client.EventOrgRejected
	case EventTransparencyAlarm:
		ev.Kind = client.EventTransparencyAlarm
		if a := e.Alarm; a != nil {
			ev.Err = &client.TransparencyAlarm{Kind: client.AlarmKind(a.Kind), Detail: a.Detail, User: a.User, Time: a.Time}
		}
	case EventError:
		ev.Kind = client.EventError
	case EventWiped:
		ev.Kind = client.EventWiped
	default:
		return client.Event{}, false
	}
	ev.Message = e.Message.Client()
	if r := e.Receipt; r != nil {
		ev.Receipt = &client.Receipt{From: r.From, FromDevice: r.FromDevice, Read: r.Read}
		for _, id := range r.IDs {
			ev.Receipt.IDs = append(ev.Receipt.IDs, id)
		}
	}
	ev.User, ev.Typing, ev.Device, ev.Notice = e.User, e.Typing, e.Device, e.Notice
	if e.Error != nil && ev.Err == nil {
		ev.Err = e.Error
	}
	return ev, true
}
