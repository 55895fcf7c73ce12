// Package browser drives a headless Chromium over the Chrome DevTools
// protocol, for end-to-end tests of the web app in a real browser. It
// speaks the few protocol methods those tests need (targets, isolated
// browser contexts, navigation, script evaluation, input, screenshots)
// over the WebSocket library the project already uses.
package browser
