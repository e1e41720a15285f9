// The temporal filter of inference/temporal.py, for the page's "run on this device" mode: the same
// steps and constants, so a webcam held still in the browser holds still as the server's stream
// does (tests/test_web_ondevice.py compares the two on the same frames). Read the Python module
// for the why of each step; the comments here say only where the port differs.
// Images: luminance as Float32Array(h * w); RGB as Float32Array(h * w * 3), interleaved, in [0, 1].
"use strict";

const StylecastTemporal = (() => {
  const LUMA = [0.299, 0.587, 0.114].map(Math.fround);
  const PHASE_SIDE = 128, MAX_SHIFT = 0.25, MIN_PEAK = 0.03, LK_STEPS = 2, SNAP = 0.01, STILL_SHIFT = 0.1;
  const DEFAULTS = { history: 0.7, stillHistory: 0.9, still: 4.0, moving: 12.0 };

  function luminance(rgba, w, h) {
    const out = new Float32Array(w * h);
    for (let i = 0; i < w * h; i++) {
      out[i] = (rgba[4 * i] / 255) * LUMA[0] + (rgba[4 * i + 1] / 255) * LUMA[1] + (rgba[4 * i + 2] / 255) * LUMA[2];
    }
    return out;
  }

  function blockMean(img, w, h, k) {
    if (k === 1) return { data: img, w, h };
    const bw = Math.floor(w / k), bh = Math.floor(h / k);
    const out = new Float32Array(bw * bh);
    for (let y = 0; y < bh; y++) {
      for (let x = 0; x < bw; x++) {
        let s = 0;
        for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) s += img[(y * k + i) * w + x * k + j];
        out[y * bw + x] = s / (k * k);
      }
    }
    return { data: out, w: bw, h: bh };
  }

  // --- phase correlation: radix-2 FFTs of the windowed frames, zero-padded to powers of two ---

  const twiddles = new Map();  // n -> [cos, sin] of 2πk/n, k < n/2 (computed once per size)

  function twiddle(n) {
    if (!twiddles.has(n)) {
      const c = new Float64Array(n / 2), si = new Float64Array(n / 2);
      for (let k = 0; k < n / 2; k++) {
        c[k] = Math.cos((2 * Math.PI * k) / n);
        si[k] = Math.sin((2 * Math.PI * k) / n);
      }
      twiddles.set(n, [c, si]);
    }
    return twiddles.get(n);
  }

  function fft(re, im, n, stride, offset, inverse) {
    for (let i = 1, j = 0; i < n; i++) {  // bit reversal
      let bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) {
        const a = offset + i * stride, b = offset + j * stride;
        let t = re[a]; re[a] = re[b]; re[b] = t;
        t = im[a]; im[a] = im[b]; im[b] = t;
      }
    }
    const [cos, sin] = twiddle(n);
    const sign = inverse ? 1 : -1;
    for (let len = 2; len <= n; len <<= 1) {
      const half = len >> 1, step = n / len;
      for (let i = 0; i < n; i += len) {
        for (let k = 0; k < half; k++) {
          const c = cos[k * step], s = sign * sin[k * step];
          const a = offset + (i + k) * stride, b = a + half * stride;
          const tr = re[b] * c - im[b] * s, ti = re[b] * s + im[b] * c;
          re[b] = re[a] - tr; im[b] = im[a] - ti;
          re[a] += tr; im[a] += ti;
        }
      }
    }
  }

  function fft2(re, im, H, W, inverse) {
    for (let y = 0; y < H; y++) fft(re, im, W, 1, y * W, inverse);
    for (let x = 0; x < W; x++) fft(re, im, H, W, x, inverse);
  }

  function hanning(n) {
    return Float64Array.from({ length: n }, (_, i) => (n === 1 ? 1 : 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1))));
  }

  function nextPow2(n) {
    let p = 1;
    while (p < n) p <<= 1;
    return p;
  }

  function phasePeak(prev, cur, w, h) {
    const H = nextPow2(h), W = nextPow2(w);
    const wy = hanning(h), wx = hanning(w);
    const spectra = [prev, cur].map((img) => {
      let mean = 0;
      for (let i = 0; i < w * h; i++) mean += img[i];
      mean /= w * h;
      const re = new Float64Array(H * W), im = new Float64Array(H * W);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) re[y * W + x] = (img[y * w + x] - mean) * wy[y] * wx[x];
      fft2(re, im, H, W, false);
      return [re, im];
    });
    const [[ar, ai], [br, bi]] = spectra;
    const re = new Float64Array(H * W), im = new Float64Array(H * W);
    for (let i = 0; i < H * W; i++) {
      const cr = br[i] * ar[i] + bi[i] * ai[i], ci = bi[i] * ar[i] - br[i] * ai[i];  // b · conj(a)
      const m = Math.max(Math.hypot(cr, ci), 1e-12);
      re[i] = cr / m;
      im[i] = ci / m;
    }
    fft2(re, im, H, W, true);
    let best = 0;
    for (let i = 1; i < H * W; i++) if (re[i] > re[best]) best = i;  // the first maximum, as numpy.argmax
    const iy = Math.floor(best / W), ix = best % W;
    const dy = -(iy <= H / 2 ? iy : iy - H), dx = -(ix <= W / 2 ? ix : ix - W);
    return { dx, dy, peak: re[best] / (H * W) };
  }

  // --- warps: `image` sampled at q + (dx, dy); the view (rows y0..y1, columns x0..x1) ---

  function view(w, h, dx, dy) {
    const ix = Math.floor(dx), iy = Math.floor(dy);
    const fx = dx - ix, fy = dy - iy;
    return {
      ix, iy, fx, fy,
      x0: Math.max(0, -ix), x1: Math.min(w, w - ix - (fx > 0 ? 1 : 0)),
      y0: Math.max(0, -iy), y1: Math.min(h, h - iy - (fy > 0 ? 1 : 0)),
    };
  }

  function shift(img, w, h, c, dx, dy) {
    const v = view(w, h, dx, dy);
    const out = new Float32Array(w * h * c);
    const ox = v.fx ? c : 0, oy = v.fy ? w * c : 0;  // the second tap's offset (none on a whole shift)
    for (let y = v.y0; y < v.y1; y++) {
      for (let x = v.x0; x < v.x1; x++) {
        const src = ((y + v.iy) * w + x + v.ix) * c, dst = (y * w + x) * c;
        for (let ch = 0; ch < c; ch++) {
          const a = src + ch;
          const top = (1 - v.fx) * img[a] + v.fx * img[a + ox];
          const bottom = (1 - v.fx) * img[a + oy] + v.fx * img[a + oy + ox];
          out[dst + ch] = (1 - v.fy) * top + v.fy * bottom;
        }
      }
    }
    return { data: out, ...v };
  }

  function keys(t) {
    return [(-t * t * t + 2 * t * t - t) / 2, (3 * t * t * t - 5 * t * t + 2) / 2, (-3 * t * t * t + 4 * t * t + t) / 2, (t * t * t - t * t) / 2];
  }

  function snap(v) {
    const r = Math.round(v);
    return Math.abs(v - r) < SNAP ? r : v;
  }

  // Keys' cubic, taps past the edge repeating it (the Python pads the same way). Separable: a y pass
  // into one row buffer, then an x pass with the 4 source columns of each output column precomputed.
  function shiftCubic(img, w, h, c, dx, dy) {
    const v = view(w, h, snap(dx), snap(dy));
    const out = new Float32Array(w * h * c);
    const [t0, t1, t2, t3] = v.fx ? keys(v.fx) : [0, 1, 0, 0];
    const ty = v.fy ? keys(v.fy) : [0, 1, 0, 0];
    const cl = (x) => Math.min(w - 1, Math.max(0, x)) * c;
    const c0 = new Int32Array(w), c1 = new Int32Array(w), c2 = new Int32Array(w), c3 = new Int32Array(w);
    for (let x = 0; x < w; x++) {
      c0[x] = cl(x + v.ix - 1); c1[x] = cl(x + v.ix); c2[x] = cl(x + v.ix + 1); c3[x] = cl(x + v.ix + 2);
    }
    const wc = w * c, row = new Float64Array(wc);
    for (let y = v.y0; y < v.y1; y++) {
      row.fill(0);
      for (let i = 0; i < 4; i++) {
        const wt = ty[i];
        if (!wt) continue;
        const base = Math.min(h - 1, Math.max(0, y + v.iy + i - 1)) * wc;
        for (let k = 0; k < wc; k++) row[k] += wt * img[base + k];
      }
      const dst = y * wc;
      for (let x = v.x0; x < v.x1; x++) {
        for (let ch = 0; ch < c; ch++) {
          out[dst + x * c + ch] = t0 * row[c0[x] + ch] + t1 * row[c1[x] + ch] + t2 * row[c2[x] + ch] + t3 * row[c3[x] + ch];
        }
      }
    }
    return { data: out, ...v };
  }

  // --- sub-pixel: Lucas–Kanade (numpy.gradient's differences, the 2x2 normal equations) ---

  function gradient(img, w, h) {
    const gx = new Float32Array(w * h), gy = new Float32Array(w * h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        gx[i] = x === 0 ? img[i + 1] - img[i] : x === w - 1 ? img[i] - img[i - 1] : (img[i + 1] - img[i - 1]) / 2;
        gy[i] = y === 0 ? img[i + w] - img[i] : y === h - 1 ? img[i] - img[i - w] : (img[i + w] - img[i - w]) / 2;
      }
    }
    return { gx, gy };
  }

  function lucasKanade(prev, cur, w, h, dx, dy, steps) {
    const { gx, gy } = gradient(cur, w, h);
    for (let step = 0; step < steps; step++) {
      const warped = shift(prev, w, h, 1, dx, dy);
      if ((warped.y1 - warped.y0) * (warped.x1 - warped.x0) < 64) return null;
      let xx = 0, xy = 0, yy = 0, xe = 0, ye = 0, sx = 0, sy = 0, se = 0;
      for (let y = warped.y0; y < warped.y1; y++) {
        for (let x = warped.x0; x < warped.x1; x++) {
          const i = y * w + x, e = warped.data[i] - cur[i];
          xx += gx[i] * gx[i]; xy += gx[i] * gy[i]; yy += gy[i] * gy[i];
          xe += gx[i] * e; ye += gy[i] * e;
          sx += gx[i]; sy += gy[i]; se += e;
        }
      }
      // a brightness offset as a third unknown: the sums of the centred terms
      const n = (warped.y1 - warped.y0) * (warped.x1 - warped.x0);
      xx -= (sx * sx) / n; xy -= (sx * sy) / n; yy -= (sy * sy) / n; xe -= (sx * se) / n; ye -= (sy * se) / n;
      // numpy.linalg.cond of the symmetric 2x2: the ratio of its eigenvalues
      const mid = (xx + yy) / 2, rad = Math.hypot((xx - yy) / 2, xy);
      if (mid - rad <= 0 || (mid + rad) / (mid - rad) > 1e6) break;
      const det = xx * yy - xy * xy;
      const ux = (-xe * yy + ye * xy) / det, uy = (-ye * xx + xe * xy) / det;
      dx += ux;
      dy += uy;
      if (Math.abs(ux) < 1e-3 && Math.abs(uy) < 1e-3) break;
    }
    return [dx, dy];
  }

  function estimateTranslation(prev, cur, w, h) {
    const k = Math.max(1, Math.ceil(Math.max(h, w) / PHASE_SIDE));
    const sp = blockMean(prev, w, h, k), sc = blockMean(cur, w, h, k);
    let { dx, dy, peak } = phasePeak(sp.data, sc.data, sp.w, sp.h);
    dx *= k;
    dy *= k;
    if (peak < MIN_PEAK || Math.abs(dx) > MAX_SHIFT * w || Math.abs(dy) > MAX_SHIFT * h) return null;
    if (k > 1) {
      const small = lucasKanade(sp.data, sc.data, sp.w, sp.h, dx / k, dy / k, LK_STEPS + 1);
      if (!small) return null;
      dx = small[0] * k;
      dy = small[1] * k;
    }
    return lucasKanade(prev, cur, w, h, dx, dy, k === 1 ? LK_STEPS : 1);
  }

  function box(img, w, h, r) {  // mean over (2r+1)², edges repeated
    const n = 2 * r + 1, tmp = new Float32Array(w * h), out = new Float32Array(w * h);
    const rows = Int32Array.from({ length: h * n }, (_, k) => Math.min(h - 1, Math.max(0, Math.floor(k / n) + (k % n) - r)) * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += img[rows[y * n + i] + x];
        tmp[y * w + x] = sum;
      }
    }
    const cols = Int32Array.from({ length: w * n }, (_, k) => Math.min(w - 1, Math.max(0, Math.floor(k / n) + (k % n) - r)));
    for (let y = 0; y < h; y++) {
      const base = y * w;
      for (let x = 0; x < w; x++) {
        let sum = 0;
        for (let j = 0; j < n; j++) sum += tmp[base + cols[x * n + j]];
        out[base + x] = sum / (n * n);
      }
    }
    return out;
  }

  // One video's state, as TemporalFilter: step(frameRGBA, stylizedRGB) -> steadied RGB (float).
  function create(settings = {}) {
    const s = { ...DEFAULTS, ...settings };
    let luma = null, estimate = null, out = null, w = 0, h = 0;
    const filter = {
      settings: s,
      lastShift: null,
      reset() { luma = estimate = out = null; filter.lastShift = null; },
      step(rgba, stylized, width, height) {
        const cur = luminance(rgba, width, height);
        let d = null;
        if (s.history > 0 && out && w === width && h === height) d = estimateTranslation(luma, cur, w, h);
        filter.lastShift = d;
        w = width;
        h = height;
        if (!d) {
          out = Float32Array.from(stylized);
          estimate = cur;
        } else {
          const prevOut = shiftCubic(out, w, h, 3, d[0], d[1]);
          const prevEstimate = shiftCubic(estimate, w, h, 1, d[0], d[1]);
          const vw = prevOut.x1 - prevOut.x0, vh = prevOut.y1 - prevOut.y0;
          const change = new Float32Array(vw * vh);  // the view only, as the Python's box
          for (let y = 0; y < vh; y++) {
            for (let x = 0; x < vw; x++) {
              const i = (y + prevOut.y0) * w + x + prevOut.x0;
              change[y * vw + x] = Math.abs(cur[i] - prevEstimate.data[i]) * 255;
            }
          }
          const changed = box(change, vw, vh, 2);
          const still = Math.max(Math.abs(d[0]), Math.abs(d[1])) < STILL_SHIFT;
          const history = still ? Math.max(s.history, s.stillHistory) : s.history;
          const next = Float32Array.from(stylized);  // outside the view: the new frame alone
          const nextEstimate = Float32Array.from(cur);
          const prev = prevOut.data, prevE = prevEstimate.data, span = s.moving - s.still;
          for (let y = prevOut.y0; y < prevOut.y1; y++) {
            for (let x = prevOut.x0; x < prevOut.x1; x++) {
              const c = changed[(y - prevOut.y0) * vw + x - prevOut.x0];
              const a = Math.fround(history * Math.min(1, Math.max(0, (s.moving - c) / span)));
              const i = y * w + x, k = 3 * i;
              nextEstimate[i] = cur[i] + a * (prevE[i] - cur[i]);
              // overshoot of the cubic: clipped when drawn
              next[k] = stylized[k] + a * (prev[k] - stylized[k]);
              next[k + 1] = stylized[k + 1] + a * (prev[k + 1] - stylized[k + 1]);
              next[k + 2] = stylized[k + 2] + a * (prev[k + 2] - stylized[k + 2]);
            }
          }
          out = next;
          estimate = nextEstimate;
        }
        luma = cur;
        return out;
      },
    };
    return filter;
  }

  return { create, estimateTranslation, luminance, DEFAULTS };
})();
