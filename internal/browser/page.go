package browser

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Page is one tab.
type Page struct {
	b       *Browser
	session string
	target  string
	context string
	loads   chan struct{}

	mu     sync.Mutex
	errors []string // exceptions, console errors, browser log errors (CSP)
}

func (p *Page) call(ctx context.Context, method string, params, out any) error {
	return p.b.call(ctx, p.session, method, params, out)
}

// event is called by the reader, under the browser's lock.
func (p *Page) event(method string, params json.RawMessage) {
	switch method {
	case "Page.loadEventFired":
		select {
		case p.loads <- struct{}{}:
		default:
		}
	case "Runtime.exceptionThrown":
		var e struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		json.Unmarshal(params, &e)
		p.addError("exception: " + e.Details.Text + " " + e.Details.Exception.Description)
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		json.Unmarshal(params, &e)
		if e.Type == "error" || e.Type == "assert" {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, fmt.Sprint(a.Value)+a.Description)
			}
			p.addError("console: " + strings.Join(parts, " "))
		}
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Level  string `json:"level"`
				Source string `json:"source"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		json.Unmarshal(params, &e)
		if e.Entry.Level == "error" {
			p.addError("log(" + e.Entry.Source + "): " + e.Entry.Text + " " + e.Entry.URL)
		}
	}
}

func (p *Page) addError(s string) {
	p.mu.Lock()
	p.errors = append(p.errors, s)
	p.mu.Unlock()
}

// Errors returns what went wrong in the page so far: uncaught exceptions,
// console errors, and the browser's own error log (where Content Security
// Policy violations and failed loads show).
func (p *Page) Errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// ClearErrors forgets the errors seen so far.
func (p *Page) ClearErrors() {
	p.mu.Lock()
	p.errors = nil
	p.mu.Unlock()
}

// Navigate loads url and waits for its load event.
func (p *Page) Navigate(ctx context.Context, url string) error {
	for len(p.loads) > 0 {
		<-p.loads
	}
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.call(ctx, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("browser: navigate %s: %s", url, r.ErrorText)
	}
	select {
	case <-p.loads:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("browser: navigate %s: %w", url, ctx.Err())
	}
}

// EvalError is an exception thrown by evaluated script.
type EvalError struct{ Text string }

func (e *EvalError) Error() string { return "browser: script threw: " + e.Text }

// Eval evaluates a JavaScript expression in the page (awaiting it if it is
// a promise) and stores its JSON value in out, if out is not nil.
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.call(ctx, "Runtime.evaluate", map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true, "userGesture": true,
	}, &r)
	if err != nil {
		return err
	}
	if r.Exception != nil {
		return &EvalError{Text: r.Exception.Text + " " + r.Exception.Exception.Description}
	}
	if out != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, out)
	}
	return nil
}

// WaitFor evaluates cond until it is true, or ctx ends (the error then
// names the condition and the page's errors).
func (p *Page) WaitFor(ctx context.Context, cond string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		var ok bool
		err := p.Eval(ctx, "!!("+cond+")", &ok)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("browser: waiting for %s: %w (last error: %v; page errors: %q)", cond, ctx.Err(), last, p.Errors())
		}
	}
}

// Text returns the textContent of the first element matching selector.
func (p *Page) Text(ctx context.Context, selector string) (string, error) {
	var s *string
	if err := p.Eval(ctx, fmt.Sprintf("document.querySelector(%s)?.textContent ?? null", quote(selector)), &s); err != nil {
		return "", err
	}
	if s == nil {
		return "", fmt.Errorf("browser: no element %s", selector)
	}
	return *s, nil
}

// Click clicks the middle of the first element matching selector with the
// mouse, as a person would (a trusted event, after scrolling it into
// view). It waits, until ctx ends, for such an element to be shown.
func (p *Page) Click(ctx context.Context, selector string) error {
	var box *struct{ X, Y float64 }
	expr := fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return null;
		e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect();
		if (r.width === 0 || r.height === 0) return null;
		return {X: r.x + r.width / 2, Y: r.y + r.height / 2}; })()`, quote(selector))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := p.Eval(ctx, expr, &box); err != nil {
			return err
		}
		if box != nil {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("browser: no element %s shown: %w", selector, ctx.Err())
		}
	}
	for _, typ := range []string{"mousePressed", "mouseReleased"} {
		if err := p.call(ctx, "Input.dispatchMouseEvent", map[string]any{
			"type": typ, "x": box.X, "y": box.Y, "button": "left", "clickCount": 1,
		}, nil); err != nil {
			return err
		}
	}
	return nil
}

// Focus focuses the first element matching selector.
func (p *Page) Focus(ctx context.Context, selector string) error {
	var ok bool
	if err := p.Eval(ctx, fmt.Sprintf("(() => { const e = document.querySelector(%s); if (!e) return false; e.focus(); return true })()", quote(selector)), &ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("browser: no element %s", selector)
	}
	return nil
}

// Type inserts text at the focus, as typing (or an input method) would.
func (p *Page) Type(ctx context.Context, text string) error {
	return p.call(ctx, "Input.insertText", map[string]any{"text": text}, nil)
}

// keys maps the key names Press knows to their key codes.
var keys = map[string]int{"Enter": 13, "Tab": 9, "Escape": 27, "ArrowUp": 38, "ArrowDown": 40, "Backspace": 8, "Delete": 46}

// Press presses and releases a named key (Enter, Tab, Escape, ArrowUp,
// ArrowDown, Backspace, Delete), with modifiers (1 Alt, 2 Ctrl, 4 Meta,
// 8 Shift).
func (p *Page) Press(ctx context.Context, key string, modifiers int) error {
	code, ok := keys[key]
	if !ok {
		return fmt.Errorf("browser: unknown key %q", key)
	}
	down := map[string]any{"type": "keyDown", "key": key, "code": key, "windowsVirtualKeyCode": code, "modifiers": modifiers}
	if key == "Enter" {
		down["text"] = "\r"
	}
	if err := p.call(ctx, "Input.dispatchKeyEvent", down, nil); err != nil {
		return err
	}
	return p.call(ctx, "Input.dispatchKeyEvent", map[string]any{"type": "keyUp", "key": key, "code": key, "windowsVirtualKeyCode": code, "modifiers": modifiers}, nil)
}

// SetSize sets the viewport in CSS pixels; mobile emulates a phone.
func (p *Page) SetSize(ctx context.Context, width, height int, mobile bool) error {
	scale := 1.0
	if mobile {
		scale = 2
	}
	return p.call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile,
	}, nil)
}

// SetDarkMode makes the page see prefers-color-scheme: dark (or light).
func (p *Page) SetDarkMode(ctx context.Context, dark bool) error {
	v := "light"
	if dark {
		v = "dark"
	}
	return p.call(ctx, "Emulation.setEmulatedMedia", map[string]any{
		"features": []map[string]string{{"name": "prefers-color-scheme", "value": v}},
	}, nil)
}

// Screenshot returns a PNG of the viewport.
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	if err := p.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// SetFiles sets the files of the <input type=file> matching selector (as
// choosing them in the file dialog would) and fires its change event.
func (p *Page) SetFiles(ctx context.Context, selector string, paths []string) error {
	var doc struct {
		Root struct {
			NodeID int `json:"nodeId"`
		} `json:"root"`
	}
	if err := p.call(ctx, "DOM.getDocument", map[string]any{"depth": 0}, &doc); err != nil {
		return err
	}
	var q struct {
		NodeID int `json:"nodeId"`
	}
	if err := p.call(ctx, "DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": selector}, &q); err != nil {
		return err
	}
	if q.NodeID == 0 {
		return fmt.Errorf("browser: no element %s", selector)
	}
	return p.call(ctx, "DOM.setFileInputFiles", map[string]any{"files": paths, "nodeId": q.NodeID}, nil)
}

// Close closes the tab and its browser context.
func (p *Page) Close(ctx context.Context) error {
	err := p.b.call(ctx, "", "Target.closeTarget", map[string]any{"targetId": p.target}, nil)
	p.b.mu.Lock()
	delete(p.b.pages, p.session)
	p.b.mu.Unlock()
	return errors.Join(err, p.b.call(ctx, "", "Target.disposeBrowserContext", map[string]any{"browserContextId": p.context}, nil))
}

// quote makes a JavaScript string literal.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Call sends any DevTools protocol command to the page's session, for what
// the helpers above do not cover.
func (p *Page) Call(ctx context.Context, method string, params, out any) error {
	return p.call(ctx, method, params, out)
}
