// qrdecode.js: a small QR code reader, written for this app (Chromium on
// Linux has no BarcodeDetector). It reads what the app and the CLI draw:
// versions 1 to 10, any error-correction level, byte, numeric and
// alphanumeric segments. It finds the three finder patterns in a
// grayscale picture, samples the grid through them (an affine map: a code
// seen straight on, at any scale and rotation, not at a slant), reads the
// format, unmasks, de-interleaves the blocks, and accepts a reading only
// when every block's Reed-Solomon syndromes are zero: a misread frame is
// dropped, never turned into wrong bytes.

// Total codewords, and per level (L, M, Q, H) [blocks, check bytes per
// block], for versions 1 to 10 (ISO/IEC 18004, table 9).
const VERSIONS = [
  null,
  [26, [[1, 7], [1, 10], [1, 13], [1, 17]]],
  [44, [[1, 10], [1, 16], [1, 22], [1, 28]]],
  [70, [[1, 15], [1, 26], [2, 18], [2, 22]]],
  [100, [[1, 20], [2, 18], [2, 26], [4, 16]]],
  [134, [[1, 26], [2, 24], [4, 18], [4, 22]]],
  [172, [[2, 18], [4, 16], [4, 24], [4, 28]]],
  [196, [[2, 20], [4, 18], [6, 18], [5, 26]]],
  [242, [[2, 24], [4, 22], [6, 22], [6, 26]]],
  [292, [[2, 30], [5, 22], [8, 20], [8, 24]]],
  [346, [[4, 18], [5, 26], [8, 24], [8, 28]]],
];
export const MAX_VERSION = 10;

// Alignment pattern centres per version (table E.1).
const ALIGN = [null, [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50]];

// The level bits of the format information, to the index in VERSIONS.
const LEVEL = { 1: 0, 0: 1, 3: 2, 2: 3 }; // L=01, M=00, Q=11, H=10

const MASKS = [
  (y, x) => (y + x) % 2 === 0,
  (y) => y % 2 === 0,
  (y, x) => x % 3 === 0,
  (y, x) => (y + x) % 3 === 0,
  (y, x) => (Math.floor(y / 2) + Math.floor(x / 3)) % 2 === 0,
  (y, x) => ((y * x) % 2) + ((y * x) % 3) === 0,
  (y, x) => (((y * x) % 2) + ((y * x) % 3)) % 2 === 0,
  (y, x) => (((y + x) % 2) + ((y * x) % 3)) % 2 === 0,
];

// GF(256) with the QR polynomial x^8+x^4+x^3+x^2+1.
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
{
  let v = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = v;
    LOG[v] = i;
    v <<= 1;
    if (v & 0x100) v ^= 0x11d;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
}
const gmul = (a, b) => (a && b ? EXP[LOG[a] + LOG[b]] : 0);

// The 32 valid format words (BCH(15,5), masked with 0x5412).
const FORMATS = [];
for (let d = 0; d < 32; d++) {
  let r = d << 10;
  for (let i = 14; i >= 10; i--) if (r & (1 << i)) r ^= 0x537 << (i - 10);
  FORMATS.push([((d << 10) | r) ^ 0x5412, d]);
}

function popcount(x) {
  let n = 0;
  for (; x; x &= x - 1) n++;
  return n;
}

// readFormat returns [level index, mask], or null.
function readFormat(get, n) {
  let a = 0;
  let b = 0;
  const bit = (v, x, y) => (v << 1) | (get(x, y) ? 1 : 0);
  for (let x = 0; x < 6; x++) a = bit(a, x, 8);
  a = bit(a, 7, 8);
  a = bit(a, 8, 8);
  a = bit(a, 8, 7);
  for (let y = 5; y >= 0; y--) a = bit(a, 8, y);
  for (let y = n - 1; y >= n - 7; y--) b = bit(b, 8, y);
  for (let x = n - 8; x < n; x++) b = bit(b, x, 8);
  let best = null;
  let dist = 4; // up to 3 bit errors
  for (const [w, d] of FORMATS) {
    const e = Math.min(popcount(w ^ a), popcount(w ^ b));
    if (e < dist) { dist = e; best = d; }
  }
  return best === null ? null : [LEVEL[best >> 3], best & 7];
}

// functionMask marks the modules that carry no data.
function functionMask(v, n) {
  const f = new Uint8Array(n * n);
  const fill = (x0, y0, w, h) => {
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) f[y * n + x] = 1;
  };
  fill(0, 0, 9, 9);
  fill(n - 8, 0, 8, 9);
  fill(0, n - 8, 9, 8);
  const al = ALIGN[v];
  const last = al.length - 1;
  for (let i = 0; i <= last; i++) {
    for (let j = 0; j <= last; j++) {
      if ((i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0)) continue;
      fill(al[i] - 2, al[j] - 2, 5, 5);
    }
  }
  fill(6, 9, 1, n - 17);
  fill(9, 6, n - 17, 1);
  if (v >= 7) {
    fill(n - 11, 0, 3, 6);
    fill(0, n - 11, 6, 3);
  }
  return f;
}

// decodeModules reads a code of size n (get(x, y): the module is dark).
// It returns the bytes, or null.
export function decodeModules(get, n) {
  const v = (n - 17) / 4;
  if (!Number.isInteger(v) || v < 1 || v > MAX_VERSION) return null;
  const fmt = readFormat(get, n);
  if (!fmt) return null;
  const [level, mask] = fmt;
  const f = functionMask(v, n);
  const [total, levels] = VERSIONS[v];
  const raw = new Uint8Array(total);
  let k = 0;
  let cur = 0;
  let nbits = 0;
  let up = true;
  for (let x = n - 1; x > 0; x -= 2) {
    if (x === 6) x--;
    for (let c = 0; c < n; c++) {
      const y = up ? n - 1 - c : c;
      for (let col = 0; col < 2; col++) {
        const xx = x - col;
        if (f[y * n + xx]) continue;
        cur = (cur << 1) | ((get(xx, y) !== MASKS[mask](y, xx)) ? 1 : 0);
        if (++nbits === 8) {
          if (k < total) raw[k++] = cur;
          cur = 0;
          nbits = 0;
        }
      }
    }
    up = !up;
  }
  if (k !== total) return null;
  // De-interleave: data codewords, short blocks first, then check bytes.
  const [nblock, check] = levels[level];
  const dataTotal = total - nblock * check;
  const short = Math.floor(dataTotal / nblock);
  const nlong = dataTotal % nblock;
  const blocks = [];
  for (let i = 0; i < nblock; i++) blocks.push({ data: [], check: [], len: short + (i >= nblock - nlong ? 1 : 0) });
  let p = 0;
  for (let i = 0; i < short + 1; i++) {
    for (const b of blocks) if (i < b.len) b.data.push(raw[p++]);
  }
  for (let i = 0; i < check; i++) for (const b of blocks) b.check.push(raw[p++]);
  // Every block's syndromes must be zero.
  for (const b of blocks) {
    const word = b.data.concat(b.check);
    for (let i = 0; i < check; i++) {
      let s = 0;
      const a = EXP[i];
      for (const c of word) s = gmul(s, a) ^ c;
      if (s !== 0) return null;
    }
  }
  const data = [];
  for (const b of blocks) data.push(...b.data);
  return parseSegments(data, v);
}

const ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

function parseSegments(data, v) {
  let pos = 0;
  const bits = data.length * 8;
  const read = (n) => {
    let r = 0;
    for (let i = 0; i < n; i++, pos++) r = (r << 1) | ((data[pos >> 3] >> (7 - (pos & 7))) & 1);
    return r;
  };
  const out = [];
  while (pos + 4 <= bits) {
    const mode = read(4);
    if (mode === 0) break;
    if (mode === 4) { // bytes
      const len = read(v < 10 ? 8 : 16);
      if (pos + len * 8 > bits) return null;
      for (let i = 0; i < len; i++) out.push(read(8));
    } else if (mode === 1) { // numeric
      let len = read(v < 10 ? 10 : 12);
      while (len >= 3) { const d = read(10); out.push(...new TextEncoder().encode(String(d).padStart(3, "0"))); len -= 3; }
      if (len === 2) out.push(...new TextEncoder().encode(String(read(7)).padStart(2, "0")));
      if (len === 1) out.push(...new TextEncoder().encode(String(read(4))));
    } else if (mode === 2) { // alphanumeric
      let len = read(v < 10 ? 9 : 11);
      while (len >= 2) { const d = read(11); out.push(ALNUM.charCodeAt(Math.floor(d / 45)), ALNUM.charCodeAt(d % 45)); len -= 2; }
      if (len === 1) out.push(ALNUM.charCodeAt(read(6)));
    } else {
      return null; // kanji, ECI, structured append: not what the app draws
    }
    if (pos > bits) return null;
  }
  return new Uint8Array(out);
}

// ---- finding the code in a picture ----

// luma turns RGBA pixels into a dark/light map (threshold: halfway
// between the darkest and the lightest tenth of the picture).
function binarize(img) {
  const { width: w, height: h, data } = img;
  const lum = new Uint8Array(w * h);
  const hist = new Uint32Array(256);
  for (let i = 0; i < w * h; i++) {
    const l = (data[i * 4] * 77 + data[i * 4 + 1] * 150 + data[i * 4 + 2] * 29) >> 8;
    lum[i] = l;
    hist[l]++;
  }
  const tenth = (w * h) / 10;
  let lo = 0;
  for (let acc = 0; lo < 255 && acc + hist[lo] < tenth; lo++) acc += hist[lo];
  let hi = 255;
  for (let acc = 0; hi > 0 && acc + hist[hi] < tenth; hi--) acc += hist[hi];
  const t = (lo + hi) / 2;
  const dark = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) dark[i] = lum[i] < t ? 1 : 0;
  return { w, h, dark, contrast: hi - lo };
}

// ratioOK: runs in the ratio 1:1:3:1:1.
function ratioOK(r) {
  const total = r[0] + r[1] + r[2] + r[3] + r[4];
  if (total < 7) return 0;
  const u = total / 7;
  const tol = u * 0.7;
  if (Math.abs(r[0] - u) < tol && Math.abs(r[1] - u) < tol && Math.abs(r[2] - 3 * u) < 3 * tol &&
      Math.abs(r[3] - u) < tol && Math.abs(r[4] - u) < tol) return u;
  return 0;
}

// crossCheck walks from (x, y) along (dx, dy) both ways and returns the
// centre and module size of a 1:1:3:1:1 pattern through it, or null.
function crossCheck(b, x, y, dx, dy) {
  const at = (i) => {
    const xx = x + dx * i;
    const yy = y + dy * i;
    return xx < 0 || yy < 0 || xx >= b.w || yy >= b.h ? -1 : b.dark[yy * b.w + xx];
  };
  if (at(0) !== 1) return null;
  const r = [0, 0, 0, 0, 0];
  let i = 0;
  for (; at(i) === 1; i--) r[2]++;
  for (; at(i) === 0; i--) r[1]++;
  for (; at(i) === 1; i--) r[0]++;
  const start = i + 1;
  for (i = 1; at(i) === 1; i++) r[2]++;
  for (; at(i) === 0; i++) r[3]++;
  for (; at(i) === 1; i++) r[4]++;
  const u = ratioOK(r);
  if (!u) return null;
  return [start + r[0] + r[1] + r[2] / 2, u];
}

function findFinders(b) {
  const found = [];
  for (let y = 0; y < b.h; y++) {
    const runs = [];
    let x = 0;
    while (x < b.w) {
      const c = b.dark[y * b.w + x];
      let e = x;
      while (e < b.w && b.dark[y * b.w + e] === c) e++;
      runs.push([c, x, e - x]);
      x = e;
    }
    for (let i = 0; i + 4 < runs.length; i++) {
      if (runs[i][0] !== 1) continue;
      const r = runs.slice(i, i + 5).map((q) => q[2]);
      if (!ratioOK(r)) continue;
      const cx = Math.floor(runs[i + 2][1] + runs[i + 2][2] / 2);
      const vert = crossCheck(b, cx, y, 0, 1);
      if (!vert) continue;
      const cy = Math.floor(y + vert[0]);
      const horiz = crossCheck(b, cx, cy, 1, 0);
      if (!horiz) continue;
      const px = cx + horiz[0];
      const u = (vert[1] + horiz[1]) / 2;
      const same = found.find((f) => Math.hypot(f.x - px, f.y - cy) < 3 * u);
      if (same) { same.n++; same.sx += px; same.sy += cy; same.su += u; same.x = same.sx / same.n; same.y = same.sy / same.n; same.u = same.su / same.n; } else found.push({ x: px, y: cy, u, n: 1, sx: px, sy: cy, su: u });
    }
  }
  return found.filter((f) => f.n >= 2).sort((a, c) => c.n - a.n);
}

// decodeImage finds and reads a QR code in ImageData; bytes or null.
export function decodeImage(img) {
  const b = binarize(img);
  if (b.contrast < 40) return null;
  const fs = findFinders(b).slice(0, 5);
  // Try each three of the strongest candidates.
  for (let i = 0; i < fs.length; i++) {
    for (let j = i + 1; j < fs.length; j++) {
      for (let k = j + 1; k < fs.length; k++) {
        const r = tryThree(b, [fs[i], fs[j], fs[k]]);
        if (r) return r;
      }
    }
  }
  return null;
}

function tryThree(b, pts) {
  // The top-left finder is the one opposite the longest side.
  const d = (p, q) => Math.hypot(p.x - q.x, p.y - q.y);
  const sides = [d(pts[1], pts[2]), d(pts[0], pts[2]), d(pts[0], pts[1])];
  const tl = sides.indexOf(Math.max(...sides));
  const TL = pts[tl];
  let [P, Q] = pts.filter((_, i) => i !== tl);
  if ((P.x - TL.x) * (Q.y - TL.y) - (P.y - TL.y) * (Q.x - TL.x) < 0) [P, Q] = [Q, P];
  const TR = P;
  const BL = Q;
  const u = (TL.u + TR.u + BL.u) / 3;
  const est = (d(TL, TR) + d(TL, BL)) / 2 / u + 7;
  const v0 = Math.round((est - 17) / 4);
  for (const v of [v0, v0 - 1, v0 + 1]) {
    if (v < 1 || v > MAX_VERSION) continue;
    const n = 17 + 4 * v;
    const get = (mx, my) => {
      const fx = (mx + 0.5 - 3.5) / (n - 7);
      const fy = (my + 0.5 - 3.5) / (n - 7);
      const x = Math.floor(TL.x + fx * (TR.x - TL.x) + fy * (BL.x - TL.x));
      const y = Math.floor(TL.y + fx * (TR.y - TL.y) + fy * (BL.y - TL.y));
      return x >= 0 && y >= 0 && x < b.w && y < b.h && b.dark[y * b.w + x] === 1;
    };
    const r = decodeModules(get, n);
    if (r) return r;
  }
  return null;
}
