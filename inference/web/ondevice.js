// In-browser inference for the page ("run on this device"): onnxruntime-web, served by our server
// under /ort/ (never a CDN), runs the style network on the user's GPU (WebGPU) or CPU (WASM).
// The pre/post-processing repeats inference/stylizer.py and stylecast/color.py step by step, with
// float32 rounding where numpy works in float32, so a frame stylized here equals the server's
// within one 8-bit level (tests/test_web_ondevice.py measures it).
"use strict";

const StylecastDevice = (() => {
  const MAX_SESSIONS = 3;  // each holds its weights and arena in wasm/GPU memory: keep the recent styles only
  const f32 = Math.fround;

  // --- pre-processing: NCHW float32, reflection-padded at the bottom/right (stylizer.pad_amounts) ---

  function padTo(n, multiple, minSide) {
    let target = Math.max(n, minSide);
    target += (multiple - (target % multiple)) % multiple;
    return target;
  }

  // numpy.pad's "reflect" (edge not repeated; a 1-px side uses "symmetric", as reflect_pad does),
  // extended periodically when the pad is longer than the side, as numpy's repeated reflection is.
  function reflectIndex(i, n, symmetric) {
    if (i < n) return i;
    if (symmetric) {
      const m = i % (2 * n);
      return m < n ? m : 2 * n - 1 - m;
    }
    const period = 2 * (n - 1);
    const m = i % period;
    return m < n ? m : period - m;
  }

  function toTensor(rgba, w, h, contract) {
    const H = padTo(h, contract.size_multiple, contract.min_side);
    const W = padTo(w, contract.size_multiple, contract.min_side);
    const symmetric = Math.min(h, w) <= 1;
    const data = new Float32Array(3 * H * W);  // stores f32(u8 / 255), as pil_to_array's float32 division
    const cols = Int32Array.from({ length: W }, (_, x) => reflectIndex(x, w, symmetric));
    for (let y = 0; y < H; y++) {
      const row = reflectIndex(y, h, symmetric) * w;
      for (let x = 0; x < W; x++) {
        const src = (row + cols[x]) * 4, dst = y * W + x;
        data[dst] = rgba[src] / 255;
        data[H * W + dst] = rgba[src + 1] / 255;
        data[2 * H * W + dst] = rgba[src + 2] / 255;
      }
    }
    return { data, H, W };
  }

  // --- post-processing: crop, keep colours (YIQ, stylecast/color.py), strength blend, 8-bit ---

  const RGB_TO_YIQ = [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]];
  const YIQ_TO_RGB = invert3(RGB_TO_YIQ);  // numpy.linalg.inv of the same matrix, in float64

  function invert3(m) {
    const [[a, b, c], [d, e, f], [g, h, i]] = m;
    const A = e * i - f * h, B = f * g - d * i, C = d * h - e * g;
    const det = a * A + b * B + c * C;
    return [[A / det, (c * h - b * i) / det, (b * f - c * e) / det],
            [B / det, (a * i - c * g) / det, (c * d - a * f) / det],
            [C / det, (b * g - a * h) / det, (a * e - b * d) / det]];
  }

  const clip01 = (v) => (v < 0 ? 0 : v > 1 ? 1 : v);

  // out: the network's (1, 3, H, W) output; rgba: the frame; returns the stylized frame's RGBA.
  function postprocess(out, H, W, rgba, w, h, opts) {
    const pixels = new Uint8ClampedArray(w * h * 4);  // stores round-half-even of the clamped value, as np.rint
    const st = f32(opts.strength), rest = f32(1 - opts.strength);
    const [Yr, Yg, Yb] = RGB_TO_YIQ[0], [Ir, Ig, Ib] = RGB_TO_YIQ[1], [Qr, Qg, Qb] = RGB_TO_YIQ[2];
    const inv = YIQ_TO_RGB;
    const c = [0, 0, 0], s = [0, 0, 0];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const p = (y * w + x) * 4, q = y * W + x;
        for (let k = 0; k < 3; k++) {
          c[k] = f32(rgba[p + k] / 255);
          s[k] = out[k * H * W + q];
        }
        if (opts.preserve_color) {  // the stylized luminance with the photo's chroma, in float64
          const Y = Yr * s[0] + Yg * s[1] + Yb * s[2];
          const I = Ir * c[0] + Ig * c[1] + Ib * c[2], Q = Qr * c[0] + Qg * c[1] + Qb * c[2];
          for (let k = 0; k < 3; k++) s[k] = f32(clip01(inv[k][0] * Y + inv[k][1] * I + inv[k][2] * Q));
        }
        for (let k = 0; k < 3; k++) {
          let v = s[k];
          if (opts.strength !== 1) v = f32(f32(st * v) + f32(rest * c[k]));
          pixels[p + k] = f32(clip01(v) * 255);
        }
        pixels[p + 3] = 255;
      }
    }
    return pixels;
  }

  // --- the runtime: which backend, loading it, one session per style ---

  const state = {
    runtime: null,       // the listing's browser_runtime
    backend: null,       // "webgpu" | "wasm" once loaded
    ort: null,
    threads: 1,
    notes: [],           // why a backend was not used
    sessions: new Map(), // `${backend}:${sha256}` -> Promise<InferenceSession>, most recent last
    modelLoads: 0,
    loads: [],           // per model load: {style, bytes, fetchMs, createMs} (the first create also starts the wasm)
    lastRunMs: null,
  };

  async function webgpuAdapter() {
    if (!("gpu" in navigator)) return window.isSecureContext ? "not in this browser" : "needs https or localhost";
    try {
      const adapter = await navigator.gpu.requestAdapter();
      return adapter ? null : "no adapter (no usable GPU, or GPU access disabled)";
    } catch (err) {
      return `adapter request failed: ${err.message || err}`;
    }
  }

  async function importBackend(backend) {
    const rt = state.runtime;
    const base = new URL(rt.base, location.href).href;
    const ort = await import(base + rt.bundles[backend]);
    ort.env.wasm.wasmPaths = base;  // the .mjs/.wasm files next to the bundle, from our server
    // Threads need SharedArrayBuffer, i.e. a cross-origin isolated page (the server sends COOP/COEP).
    // onnxruntime-web's own rule, half the cores up to 4: on a 2-core machine that is 1, which
    // measured faster than 2 (tests/BENCHMARKS: the other core runs the page and the camera).
    // (self.STYLECAST_THREADS: set from the console or a benchmark to try another count.)
    const auto = Math.min(4, Math.ceil((navigator.hardwareConcurrency || 1) / 2));
    state.threads = self.crossOriginIsolated ? Number(self.STYLECAST_THREADS) || auto : 1;
    ort.env.wasm.numThreads = state.threads;
    return ort;
  }

  // Picks and loads a backend once: WebGPU when there is an adapter, else WASM. Throws with every
  // reason when neither loads.
  async function start(runtime) {
    if (state.ort) return state;
    if (!runtime || !runtime.available) throw new Error(runtime ? runtime.reason : "the server did not say whether it has the runtime");
    if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly");
    state.runtime = runtime;
    state.notes = [];
    const gpuProblem = await webgpuAdapter();
    const order = gpuProblem ? ["wasm"] : ["webgpu", "wasm"];
    if (gpuProblem) state.notes.push(`WebGPU unavailable: ${gpuProblem}`);
    for (const backend of order) {
      try {
        state.ort = await importBackend(backend);
        state.backend = backend;
        return state;
      } catch (err) {
        state.notes.push(`${backend} failed to load: ${err.message || err}`);
      }
    }
    throw new Error(state.notes.join("; "));
  }

  // WebGPU can fail per model (an operator it lacks): then WASM, with the reason kept in notes.
  async function createSession(style, bytes) {
    try {
      return await state.ort.InferenceSession.create(bytes, { executionProviders: [state.backend] });
    } catch (err) {
      if (state.backend !== "webgpu") throw err;
      state.notes.push(`WebGPU could not run ${style.name}: ${err.message || err}; using WASM`);
      state.ort = await importBackend("wasm");
      state.backend = "wasm";
      state.sessions.clear();
      return state.ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    }
  }

  async function loadSession(style, fetchModel) {
    const browser = style.browser || {};
    if (!browser.model_url) throw new Error(browser.reason || `the server does not hand out ${style.name}'s model`);
    const key = `${state.backend}:${browser.sha256}`;
    let entry = state.sessions.get(key);
    if (entry) {
      state.sessions.delete(key);  // most recently used last
    } else {
      entry = (async () => {
        const t0 = performance.now();
        const bytes = new Uint8Array(await fetchModel(browser.model_url));
        const t1 = performance.now();
        const session = await createSession(style, bytes);
        state.modelLoads += 1;
        state.loads.push({ style: style.name, bytes: bytes.length, fetchMs: t1 - t0, createMs: performance.now() - t1 });
        return session;
      })();
      entry.catch(() => state.sessions.delete(key));
    }
    state.sessions.set(key, entry);
    while (state.sessions.size > MAX_SESSIONS) {
      const [oldest, old] = state.sessions.entries().next().value;
      state.sessions.delete(oldest);
      old.then((s) => s.release()).catch(() => {});
    }
    return entry;
  }

  function hasSession(style) {
    return Boolean(style && style.browser && state.sessions.has(`${state.backend}:${style.browser.sha256}`));
  }

  // One frame: ImageData in, stylized ImageData of the same size out (opts: strength, preserve_color).
  async function stylize(style, image, opts, fetchModel) {
    const { width: w, height: h, data: rgba } = image;
    if (opts.strength === 0) return new ImageData(new Uint8ClampedArray(rgba), w, h);  // as the server: the frame itself
    const session = await loadSession(style, fetchModel);
    const contract = style.browser;
    const { data, H, W } = toTensor(rgba, w, h, contract.input);
    const started = performance.now();
    const results = await session.run({ [contract.input.name]: new state.ort.Tensor("float32", data, [1, 3, H, W]) });
    const output = results[contract.output.name];
    state.lastRunMs = performance.now() - started;
    const pixels = postprocess(output.data, H, W, rgba, w, h, opts);
    output.dispose();
    return new ImageData(pixels, w, h);
  }

  function describe() {
    if (!state.backend) return "not started";
    const wasm = `WASM (SIMD, ${state.threads} thread${state.threads > 1 ? "s" : ""}${self.crossOriginIsolated ? "" : ", not cross-origin isolated"})`;
    return state.backend === "webgpu" ? "WebGPU" : wasm;
  }

  return { start, stylize, describe, hasSession, state, reflectIndex, padTo };
})();
