// Package web serves the device agent's web app: static files embedded in
// the sotto binary, on 127.0.0.1 only, to the one browser that opened the
// single-use login URL the agent printed. The relay never serves this code.
//
// Every request passes the same guard (guard.go): a Host check against DNS
// rebinding, fetch-metadata and Origin checks against cross-site and
// cross-origin requests (CSRF), a session cookie that only the login token
// can mint (other local users), and headers that forbid framing and any
// script, style or connection not from the server itself. The agent's API
// is mounted under /api/ behind that guard; the app talks to nothing else.
package web
