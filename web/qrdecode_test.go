package web

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"rsc.io/qr"
)

// The app's own QR reader (static/qrdecode.js), run in Chromium, reads
// back what rsc.io/qr (the encoder the app and the CLI draw with) wrote:
// random bytes of every length up to version 10, at every level, as a
// module grid and as a picture (scaled, turned, on a grey background).
// A code with a module flipped in a data block is refused, not misread.
func TestBrowserQRDecoder(t *testing.T) {
	b := launchBrowser(t)
	ctx := testCtx(t)
	s, _ := startServer(t, 0)
	p := browserLogin(t, ctx, b, s)
	type tcase struct {
		Data  []byte   `json:"data"`
		Grid  []string `json:"grid"`
		Angle float64  `json:"angle"`
		Scale int      `json:"scale"`
		Flip  bool     `json:"flip"`
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var cases []tcase
	levels := []qr.Level{qr.L, qr.M, qr.Q, qr.H}
	for i := 0; i < 60; i++ {
		lv := levels[i%4]
		n := 1 + rng.IntN(120)
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(rng.IntN(256))
		}
		data[0] = 0x80 | data[0] // never all digits or alphanumeric: byte mode
		code, err := qr.Encode(string(data), lv)
		if err != nil {
			t.Fatal(err)
		}
		if (code.Size-17)/4 > 10 {
			continue
		}
		grid := make([]string, code.Size)
		for y := range code.Size {
			row := make([]byte, code.Size)
			for x := range code.Size {
				row[x] = '0'
				if code.Black(x, y) {
					row[x] = '1'
				}
			}
			grid[y] = string(row)
		}
		cases = append(cases, tcase{Data: data, Grid: grid, Angle: float64(i%7) * 13, Scale: 4 + i%4})
	}
	// A flipped module in the data area: refused.
	bad := cases[1]
	bad.Flip = true
	cases = append(cases, bad)
	in, _ := json.Marshal(cases)
	var got []struct {
		Grid  []byte `json:"grid"`
		Image []byte `json:"image"`
		Null  bool   `json:"null"`
	}
	js := fmt.Sprintf(`(async () => {
  const q = await import("/qrdecode.js");
  const out = [];
  for (const c of %s) {
    const n = c.grid.length;
    const dark = (x, y) => c.grid[y][x] === "1";
    let get = dark;
    if (c.flip) get = (x, y) => (x === n - 1 && y === n - 1) ? !dark(x, y) : dark(x, y);
    const g = q.decodeModules(get, n);
    const size = (n + 8) * c.scale * 1.5 + 40;
    const cv = new OffscreenCanvas(size, size);
    const ctx = cv.getContext("2d");
    ctx.fillStyle = "#888"; ctx.fillRect(0, 0, size, size);
    ctx.translate(size / 2, size / 2); ctx.rotate(c.angle * Math.PI / 180);
    const w = (n + 8) * c.scale;
    ctx.fillStyle = "#eee"; ctx.fillRect(-w / 2, -w / 2, w, w);
    ctx.fillStyle = "#111";
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) if (get(x, y)) ctx.fillRect(-w / 2 + (x + 4) * c.scale, -w / 2 + (y + 4) * c.scale, c.scale, c.scale);
    const im = q.decodeImage(ctx.getImageData(0, 0, size, size));
    out.push({grid: g ? btoa(String.fromCharCode(...g)) : null, image: im ? btoa(String.fromCharCode(...im)) : null, null: !g});
  }
  return out;
})()`, in)
	if err := p.Eval(ctx, js, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(cases) {
		t.Fatalf("%d answers for %d cases", len(got), len(cases))
	}
	images := 0
	for i, c := range cases {
		g := got[i]
		if c.Flip {
			if !g.Null {
				t.Errorf("case %d: a code with a flipped data module was read as %x", i, g.Grid)
			}
			continue
		}
		v := (len(c.Grid) - 17) / 4
		if string(g.Grid) != string(c.Data) {
			t.Errorf("case %d (version %d, %d bytes): grid read %x, want %x", i, v, len(c.Data), g.Grid, c.Data)
		}
		if g.Image != nil && string(g.Image) != string(c.Data) {
			t.Errorf("case %d: the picture read as other bytes: %x", i, g.Image)
		}
		if string(g.Image) == string(c.Data) {
			images++
		} else if c.Angle == 0 {
			t.Errorf("case %d (version %d, scale %d, upright): the picture was not read", i, v, c.Scale)
		}
	}
	t.Logf("%d of %d pictures read (turned ones included)", images, len(cases)-1)
}
