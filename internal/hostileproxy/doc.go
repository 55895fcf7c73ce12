// Package hostileproxy is a test-only WebSocket proxy that plays a hostile
// relay: it sits between clients and the real relay, decodes every
// wire.Frame in both directions and lets a rule drop, replay, rewrite or
// inject frames. Tests use it to prove that what the relay must not be
// able to do (forge an order, replay it, swap a key) is refused.
package hostileproxy
