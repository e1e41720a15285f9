// stylecast page: upload a photo, or stream the webcam over a WebSocket. No build step; the one
// library, onnxruntime-web, is loaded from our server only when "run on this device" is switched on
// (ondevice.js). Protocol: see inference/server.py. Every frame sent gets exactly one answer (a
// frame, "dropped" or "error"), so `inflight` below is exact and the page never sends faster than
// the server answers.
"use strict";

const $ = (id) => document.getElementById(id);
// One frame on the server, one on the wire: enough to hide the round trip. (self.STYLECAST_INFLIGHT
// and self.STYLECAST_FRAME = {type, quality}: set from the console or a benchmark to try others.)
const MAX_INFLIGHT = Number(self.STYLECAST_INFLIGHT) || 2;
const FRAME_FORMAT = { type: "image/jpeg", quality: 0.8, ...(self.STYLECAST_FRAME || {}) };
const LATENCY_KEEP = 4096;   // per-frame latencies kept for p50/p99 (the benchmark reads them)
const FPS_WINDOW_MS = 3000;  // long enough for in-browser rates under 1 FPS

// Exposed for people poking at the page from the console (and for the browser tests).
const stylecast = (window.stylecast = {
  token: sessionStorage.getItem("stylecast-token") || "",
  styles: [],
  lastFile: null,
  photoDone: 0,
  ws: null,
  connections: 0,
  framesDrawn: 0,
  lastHeader: null,
  dropped: 0,
  latencies: [],         // capture -> drawn, ms, per frame (the last LATENCY_KEEP)
  sentBytes: 0,
  framesSent: 0,
  serverStages: { frames: 0 },
  serverReady: false,
  snapshots: 0,
  browserRuntime: null,  // GET /v1/styles' browser_runtime: can this page run styles itself
});

// ---------------------------------------------------------------------------------------------
// Settings shared by both modes

function settings() {
  return {
    style: mixSpec() || $("style").value,
    strength: Number($("strength").value) / 100,
    preserve_color: $("preserve").checked,
  };
}

// The webcam's temporal filter: the previous frame's weight (the server's default is 0.7, the slider's too).
function steadyWeight() {
  return Number($("steady").value) / 100;
}

function authHeaders() {
  return stylecast.token ? { Authorization: `Bearer ${stylecast.token}` } : {};
}

function showMessage(text) {
  const el = $("message");
  el.textContent = text;
  el.hidden = !text;
  if (text) {
    clearTimeout(showMessage.timer);
    showMessage.timer = setTimeout(() => { el.hidden = true; }, 6000);
  }
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${response.status} ${body.error}: ${body.detail}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// For the photo panel: the server's sentence first, the status after it.
async function plainError(response) {
  try {
    const body = await response.json();
    return `Could not stylize this photo: ${body.detail} (HTTP ${response.status})`;
  } catch {
    return `Could not stylize this photo (HTTP ${response.status}).`;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) $("token-box").hidden = false;
  return response;
}

// "starting…" until GET /readyz answers 200 (models loaded and warmed up), then "ready"; polled
// again while the server is not ready or unreachable, and every 15 s after, so a server that goes
// away or starts draining shows it.
async function pollReady() {
  const pill = $("server-state");
  let state = "down", text = "server unreachable", title = "the page cannot reach the server";
  try {
    const response = await fetch("readyz", { cache: "no-store" });
    const body = await response.json().catch(() => ({}));
    if (response.ok) [state, text, title] = ["ready", "ready", `${body.styles} style(s) loaded`];
    else [state, text, title] = ["starting", body.error === "draining" ? "restarting…" : "starting…", body.detail || `HTTP ${response.status}`];
  } catch { /* unreachable: the defaults above */ }
  const wasReady = stylecast.serverReady;
  stylecast.serverReady = state === "ready";
  pill.className = `pill ${state}`;
  pill.textContent = text;
  pill.title = title;
  if (stylecast.serverReady && !wasReady && stylecast.styles.length === 0) loadStyles();
  clearTimeout(pollReady.timer);
  pollReady.timer = setTimeout(pollReady, stylecast.serverReady ? 15000 : 1000);
}

async function loadStyles() {
  let response;
  try {
    response = await api("v1/styles");
  } catch (err) {
    showMessage(`cannot reach the server: ${err}`);
    setTimeout(loadStyles, 3000);
    return;
  }
  if (!response.ok) {
    showMessage(await errorText(response));
    return;
  }
  const data = await response.json();
  stylecast.styles = data.styles;
  stylecast.browserRuntime = data.browser_runtime || { available: false, reason: "this server predates in-browser inference" };
  offerDevice();
  const select = $("style");
  const previous = select.value;
  select.replaceChildren(...data.styles.map((s) => {
    const option = document.createElement("option");
    option.value = s.name;
    const meta = s.metadata || {};
    option.textContent = meta.painting || meta.artist ? `${s.name} — ${[meta.painting, meta.artist].filter(Boolean).join(", ")}` : s.name;
    return option;
  }));
  if (data.styles.some((s) => s.name === previous)) select.value = previous;
  select.disabled = data.styles.length === 0;
  nativeSizeLabel();
  if (data.styles.length || data.ready) buildSwatches(data.styles);
  buildMix();
  realtimeHint();
  if (!data.ready) setTimeout(loadStyles, 2000);  // still loading / warming up
  if (data.styles.length === 0 && data.ready) showMessage("no styles are loaded yet");
}

// ---------------------------------------------------------------------------------------------
// Swatches: the server's sample photo in each style (GET /v1/swatches/NAME, cached by the browser
// for as long as the model is the same), with the painting's title and artist, the real-time
// styles badged for the webcam. Fetched with the token (an <img src> could not send it) and shown
// from a blob URL; a swatch that fails shows its text only, never a broken image.

const swatchUrls = new Map();  // swatch_url -> blob URL

function swatchText(style) {
  const p = style.painting;
  return { title: p ? p.title : style.name, artist: p ? [p.artist, p.year].filter(Boolean).join(", ") : "" };
}

function buildSwatches(styles) {
  const box = $("swatches");
  if (styles.length === 0) {
    box.replaceChildren(Object.assign(document.createElement("p"), { className: "placeholder", textContent: "No styles are loaded yet." }));
    return;
  }
  box.replaceChildren(...styles.map((style) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "swatch";
    button.setAttribute("role", "radio");
    button.dataset.style = style.name;
    const { title, artist } = swatchText(style);
    const realtime = style.browser && style.browser.realtime;
    button.title = `${title}${artist ? " — " + artist : ""} (${style.name})${realtime ? ": fast enough for the webcam" : ""}`;
    const thumb = document.createElement("span");
    thumb.className = "thumb";
    if (realtime) thumb.append(Object.assign(document.createElement("span"), { className: "badge", textContent: "⚡ webcam" }));
    const text = document.createElement("span");
    text.className = "text";
    text.append(Object.assign(document.createElement("span"), { className: "title", textContent: title }));
    if (artist) text.append(Object.assign(document.createElement("span"), { className: "artist", textContent: artist }));
    if (title !== style.name) text.append(Object.assign(document.createElement("span"), { className: "name", textContent: style.name }));
    button.append(thumb, text);
    button.addEventListener("click", () => {
      if ($("style").value === style.name) return;
      $("style").value = style.name;
      $("style").dispatchEvent(new Event("change"));
    });
    if (style.swatch_url) loadSwatch(thumb, style.swatch_url, title);
    return button;
  }));
  markSwatch();
}

async function loadSwatch(thumb, url, title) {
  let blobUrl = swatchUrls.get(url);
  if (!blobUrl) {
    try {
      const response = await api(url);
      if (!response.ok) return;
      blobUrl = URL.createObjectURL(await response.blob());
      swatchUrls.set(url, blobUrl);
    } catch {
      return;
    }
  }
  const img = Object.assign(document.createElement("img"), { src: blobUrl, alt: `the sample photo as ${title}` });
  thumb.prepend(img);
}

function markSwatch() {
  for (const b of $("swatches").querySelectorAll(".swatch")) b.setAttribute("aria-checked", String(b.dataset.style === $("style").value));
}

// Under the webcam controls: whether the chosen style keeps up with a camera.
function realtimeHint() {
  const style = styleByName($("style").value);
  const fast = stylecast.styles.filter((s) => s.browser && s.browser.realtime).map((s) => s.name);
  let text = "";
  if (style && style.browser && !style.browser.realtime) {
    text = `${style.name} is not a real-time network: expect a few frames a second on a CPU.` + (fast.length ? ` For live video pick a ⚡ style (${fast.join(", ")}).` : "");
  } else if (style) {
    text = `${style.name} is a real-time network (⚡).`;
  }
  $("realtime-hint").textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Photo mode: POST the file, show the result next to it, offer it for download

function photoBusy(busy) {
  $("spinner").hidden = !busy;
  $("compare").setAttribute("aria-busy", String(busy));
}

// An error goes where the result would be, and the previous result's Download is disabled: the
// link would otherwise offer a picture that no longer matches the settings on screen.
function photoError(text) {
  const error = $("photo-error");
  error.textContent = text;
  error.hidden = false;
  $("result").hidden = true;
  $("compare-line").hidden = true;
  const download = $("download");
  if (!download.hidden) {
    download.removeAttribute("href");
    download.setAttribute("aria-disabled", "true");
  }
  $("compare-slider").disabled = true;
  $("photo-status").textContent = "";
}

function showCompare(split) {
  $("compare").style.setProperty("--split", `${split}%`);
}

let photoRequest = 0;  // a newer request makes an older one's answer moot

async function stylizeFile(file) {
  if (!file) return;
  const request = (photoRequest += 1);
  stylecast.lastFile = file;
  const original = $("original");
  if (original.dataset.file !== file.name + file.size) {
    if (original.src) URL.revokeObjectURL(original.src);
    original.src = URL.createObjectURL(file);
    original.dataset.file = file.name + file.size;
    await original.decode().catch(() => {});
  }
  const box = $("compare");
  box.classList.remove("empty");
  $("compare-empty").hidden = true;
  original.hidden = !original.naturalWidth;  // a file the browser cannot show: the server says why
  for (const tag of box.querySelectorAll(".tag")) tag.hidden = true;
  $("photo-error").hidden = true;
  const s = settings();
  const params = new URLSearchParams({ style: s.style, strength: String(s.strength), preserve_color: String(s.preserve_color), format: "png" });
  if ($("size").value) params.set("size", $("size").value);
  const status = $("photo-status");
  status.textContent = "stylizing…";
  photoBusy(true);
  const started = performance.now();
  let response, blob;
  try {
    response = await api(`v1/stylize?${params}`, { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    if (response.ok) blob = await response.blob();
  } catch (err) {
    if (request === photoRequest) {
      photoBusy(false);
      photoError(`The server could not be reached (${err.message || err}). Try again in a moment.`);
    }
    return;
  }
  if (request !== photoRequest) return;
  photoBusy(false);
  if (!response.ok) {
    photoError(await plainError(response));
    return;
  }
  const result = $("result");
  if (result.src) URL.revokeObjectURL(result.src);
  const url = URL.createObjectURL(blob);
  result.src = url;
  await result.decode().catch(() => {});
  result.hidden = false;
  original.hidden = false;
  $("compare-line").hidden = false;
  for (const tag of box.querySelectorAll(".tag")) tag.hidden = false;
  $("compare-slider").disabled = false;
  showCompare($("compare-slider").value);
  const download = $("download");
  download.href = url;
  download.removeAttribute("aria-disabled");
  download.download = `${file.name.replace(/\.[^.]+$/, "") || "photo"}-${s.style.replace(/[^A-Za-z0-9_.+-]+/g, "_")}.png`;
  download.hidden = false;
  const took = Math.round(performance.now() - started);
  status.textContent = `${response.headers.get("X-Stylecast-Size")} · ${took} ms round trip · ` +
    `${response.headers.get("X-Stylecast-Infer-Ms")} ms on the server (${response.headers.get("X-Stylecast-Backend")})`;
  stylecast.photoDone += 1;
}

function setupPhoto() {
  $("file").addEventListener("change", (e) => stylizeFile(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) stylizeFile(e.dataTransfer.files[0]);
  });
  $("size").addEventListener("change", () => stylizeFile(stylecast.lastFile));
  $("compare-slider").addEventListener("input", (e) => showCompare(e.target.value));
}

// ---------------------------------------------------------------------------------------------
// Webcam mode: frames -> WebSocket -> canvas, latest frame wins

const cam = {
  stream: null,
  capture: document.createElement("canvas"),
  width: 320,
  height: 240,
  seq: 0,
  sentAt: new Map(),   // seq -> performance.now() at send
  inflight: 0,
  frames: 0,           // camera frames seen (requestVideoFrameCallback)
  taken: -1,           // the camera frame last sent or stylized: each is used once
  drawnAt: [],         // times frames were drawn, for FPS
  latency: null,       // EWMA, ms
  running: false,
  mode: "server",      // who stylizes the frames: "server" (WebSocket) or "device" (ondevice.js)
};

function streamUrl() {
  const s = settings();
  const url = new URL("v1/stream", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.search = new URLSearchParams({ style: s.style, strength: String(s.strength), preserve_color: String(s.preserve_color), steady: String(steadyWeight()), format: "jpeg" });
  if (stylecast.token) url.searchParams.set("token", stylecast.token);
  return url.toString();
}

function openSocket() {
  const ws = new WebSocket(streamUrl());
  ws.binaryType = "arraybuffer";
  stylecast.ws = ws;
  stylecast.connections += 1;
  cam.seq = 0;  // the server numbers the binary messages of each connection from 1
  cam.inflight = 0;
  cam.sentAt.clear();
  ws.onmessage = (event) => {
    if (typeof event.data === "string") onText(JSON.parse(event.data));
    else onFrame(event.data);
  };
  ws.onclose = (event) => {
    if (stylecast.ws !== ws) return;
    stylecast.ws = null;
    if (cam.running) {
      $("cam-status").textContent = `stream closed (${event.code}${event.reason ? ": " + event.reason : ""})`;
      if (event.code === 1006 || event.code === 1012) setTimeout(() => { if (cam.running && !stylecast.ws) openSocket(); }, 1000);
    }
  };
  ws.onerror = () => { $("cam-status").textContent = "stream error (see the server log; a wrong token is refused at the handshake)"; };
}

function answered(seq) {
  if (cam.sentAt.has(seq)) {
    cam.sentAt.delete(seq);
    cam.inflight = Math.max(0, cam.inflight - 1);
  }
}

function onText(msg) {
  if (msg.type === "dropped") {
    answered(msg.seq);
    stylecast.dropped += 1;
    $("dropped").textContent = String(stylecast.dropped);
  } else if (msg.type === "error") {
    if (msg.seq != null) answered(msg.seq);
    showMessage(`${msg.status} ${msg.error}: ${msg.detail}`);
  } else if (msg.type === "config") {
    $("cam-status").textContent = `style ${msg.style}, strength ${Math.round(msg.strength * 100)}%, steady ${Math.round(msg.steady * 100)}%`;
  } else if (msg.type === "hello") {
    $("cam-status").textContent = `streaming ${cam.width}×${cam.height} with ${msg.style}`;
  }
}

async function onFrame(buffer) {
  const view = new DataView(buffer);
  const headerLength = view.getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLength)));
  const sent = cam.sentAt.get(header.seq);
  answered(header.seq);
  const now = performance.now();
  stylecast.lastHeader = header;
  const st = stylecast.serverStages;  // sums, for the benchmark's decode / stylize / encode split
  st.frames += 1;
  for (const [k, v] of Object.entries(header.stages_ms || {})) st[k] = (st[k] || 0) + v;
  if (cam.mode !== "server") return;  // a late answer after switching to on-device
  const blob = new Blob([new Uint8Array(buffer, 4 + headerLength)], { type: `image/${header.format}` });
  const bitmap = await createImageBitmap(blob);
  const canvas = $("output");
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  frameDrawn(now, sent === undefined ? null : now - sent, header.server_ms);
}

// FPS over the frames drawn in the last FPS_WINDOW_MS, latency (capture -> drawn) as an EWMA.
function frameDrawn(now, latencyMs, inferenceMs) {
  stylecast.framesDrawn += 1;
  if (latencyMs !== null) {
    stylecast.latencies.push(latencyMs);
    if (stylecast.latencies.length > LATENCY_KEEP) stylecast.latencies.splice(0, stylecast.latencies.length - LATENCY_KEEP);
  }
  if (latencyMs !== null) cam.latency = cam.latency === null ? latencyMs : 0.8 * cam.latency + 0.2 * latencyMs;
  cam.drawnAt.push(now);
  while (cam.drawnAt.length && now - cam.drawnAt[0] > FPS_WINDOW_MS) cam.drawnAt.shift();
  const n = cam.drawnAt.length;
  const fps = n >= 2 ? ((n - 1) * 1000) / (now - cam.drawnAt[0]) : 0;
  $("fps").textContent = fps.toFixed(1);
  $("latency").textContent = cam.latency === null ? "–" : String(Math.round(cam.latency));
  $("server-ms").textContent = inferenceMs == null ? "–" : String(Math.round(inferenceMs));
}

// The camera frame as it is stylized: mirrored (a selfie view) when the switch is on, so the
// stylized picture, the snapshot and the preview all agree.
function drawFrame(canvas, video) {
  const ctx = canvas.getContext("2d", { willReadFrequently: canvas === device.capture });
  ctx.save();
  if ($("mirror").checked) {
    ctx.translate(canvas.width, 0);
    ctx.scale(-1, 1);
  }
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  ctx.restore();
}
stylecast.drawFrame = drawFrame;

// Each camera frame is sent once: when the pipeline is faster than the camera, the page would
// otherwise send the frame on screen again (same picture, the server's CPU and the network spent
// for nothing, and an FPS figure above the camera's). Without requestVideoFrameCallback every
// animation frame counts as new.
function watchFrames(video) {
  if (!video.requestVideoFrameCallback) return;
  const seen = () => {
    cam.frames += 1;
    if (cam.running) video.requestVideoFrameCallback(seen);
  };
  video.requestVideoFrameCallback(seen);
}

function takeFrame(video) {
  if (!video.requestVideoFrameCallback) return true;
  if (cam.frames === cam.taken) return false;
  cam.taken = cam.frames;
  return true;
}
stylecast.cam = cam;

function pump() {
  if (!cam.running) return;
  const ws = stylecast.ws;
  const video = $("video");
  if (ws && ws.readyState === WebSocket.OPEN && cam.inflight < MAX_INFLIGHT && video.readyState >= 2 && ws.bufferedAmount < 1 << 20 && takeFrame(video)) {
    cam.inflight += 1;  // counted before toBlob (async) so frames never pile up
    const captured = performance.now();  // latency counts the page's own encode too
    drawFrame(cam.capture, video);
    cam.capture.toBlob((blob) => {
      if (!blob || stylecast.ws !== ws || ws.readyState !== WebSocket.OPEN) { cam.inflight = Math.max(0, cam.inflight - 1); return; }
      cam.seq += 1;
      cam.sentAt.set(cam.seq, captured);
      stylecast.sentBytes += blob.size;
      stylecast.framesSent += 1;
      ws.send(blob);
    }, FRAME_FORMAT.type, FRAME_FORMAT.quality);
  }
  // Frames lost with a closed socket are forgotten after 5 s so the pump cannot stall.
  const now = performance.now();
  for (const [seq, at] of cam.sentAt) if (now - at > 5000) answered(seq);
  requestAnimationFrame(pump);
}

async function startCam() {
  if (!$("style").value) { showMessage("no style loaded yet"); return; }
  [cam.width, cam.height] = $("resolution").value.split("x").map(Number);
  try {
    const chosen = $("camera").value;
    const video = { width: { ideal: cam.width }, height: { ideal: cam.height }, ...(chosen ? { deviceId: { exact: chosen } } : {}) };
    cam.stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
  } catch (err) {
    showMessage(`camera unavailable: ${err.message || err}`);
    return;
  }
  const video = $("video");
  video.srcObject = cam.stream;
  await video.play().catch(() => {});
  cam.capture.width = cam.width;
  cam.capture.height = cam.height;
  $("output").width = cam.width;
  $("output").height = cam.height;
  cam.running = true;
  cam.frames = 0;
  cam.taken = -1;
  watchFrames(video);
  cam.latency = null;
  cam.drawnAt = [];
  stylecast.latencies = [];
  $("cam-start").disabled = true;
  $("cam-stop").disabled = false;
  $("snapshot").disabled = false;
  $("resolution").disabled = true;
  $("camera").disabled = true;
  listCameras(cam.stream.getVideoTracks()[0]);
  if (cam.mode === "device") runDeviceLoop();
  else openSocket();
  requestAnimationFrame(pump);
}

// The cameras by name: labels are only given once the page has camera permission, so the list
// is filled again after the camera starts; the running one is selected.
async function listCameras(track) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
  const select = $("camera");
  const current = track ? track.getSettings().deviceId : select.value;
  select.replaceChildren(...(devices.length ? devices : [{ deviceId: "", label: "" }]).map((d, i) => {
    const option = document.createElement("option");
    option.value = d.deviceId;
    option.textContent = d.label || (d.deviceId ? `camera ${i + 1}` : "default camera");
    return option;
  }));
  if (devices.some((d) => d.deviceId === current)) select.value = current;
  stylecast.cameras = devices.map((d) => ({ id: d.deviceId, label: d.label }));
}

// The stylized frame on the canvas, as a PNG download at the frame's size.
function snapshot() {
  const canvas = $("output");
  canvas.toBlob((blob) => {
    if (!blob) return;
    const url = URL.createObjectURL(blob);
    const a = Object.assign(document.createElement("a"), { href: url, download: `stylecast-${($("style").value || "frame").replace(/[^A-Za-z0-9_.+-]+/g, "_")}-${Date.now()}.png` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    stylecast.snapshots += 1;
  }, "image/png");
}

function closeSocket() {
  if (stylecast.ws) {
    const ws = stylecast.ws;
    stylecast.ws = null;
    ws.close(1000);
  }
}

function stopCam() {
  cam.running = false;
  closeSocket();
  if (cam.stream) cam.stream.getTracks().forEach((t) => t.stop());
  cam.stream = null;
  $("video").srcObject = null;
  $("cam-start").disabled = false;
  $("cam-stop").disabled = true;
  $("snapshot").disabled = stylecast.framesDrawn === 0;  // the last frame stays on the canvas: keep it
  $("resolution").disabled = false;
  $("camera").disabled = false;
  $("fps").textContent = "0.0";
  $("cam-status").textContent = "stopped";
}

// Style and strength change without reconnecting: one JSON message on the open socket.
// ---------------------------------------------------------------------------------------------
// Mix sliders: a style of a multi-style model (GET /v1/styles gives its "model" and "styles")
// gets one slider per style of that model; the sliders spell a mix in the server's grammar
// (painters/starry_night:0.7,great_wave:0.3), sent as the style: the open stream changes its mix
// without reconnecting, and the server reuses the loaded model (no recompile).

function buildMix() {
  const style = styleByName($("style").value);
  const box = $("mix");
  if (!style || !style.styles || !style.model) {
    box.hidden = true;
    $("mix-sliders").replaceChildren();
    return;
  }
  const own = style.name.slice(style.model.length + 1);
  $("mix-model").textContent = style.model;
  $("mix-sliders").replaceChildren(...style.styles.map((name) => {
    const label = document.createElement("label");
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: "0", max: "100", value: name === own ? "100" : "0" });
    input.dataset.style = name;
    input.setAttribute("aria-label", `${name} weight`);
    input.addEventListener("input", mixChanged);
    input.addEventListener("change", () => { if (!$("photo").hidden) stylizeFile(stylecast.lastFile); });
    label.append(name, input);
    return label;
  }));
  box.dataset.model = style.model;
  box.hidden = false;
  showMix();
}

// The mix the sliders spell, or null when it is the selected style alone (or every slider is 0).
function mixSpec() {
  const box = $("mix");
  if (box.hidden) return null;
  const terms = [...$("mix-sliders").querySelectorAll("input")].filter((i) => Number(i.value) > 0)
    .map((i) => `${i.dataset.style}:${(Number(i.value) / 100).toFixed(2)}`);
  const own = $("style").value.slice(box.dataset.model.length + 1);
  if (terms.length === 0 || (terms.length === 1 && terms[0].startsWith(`${own}:`))) return null;  // the style alone
  return `${box.dataset.model}/${terms.join(",")}`;
}

function showMix() {
  const spec = mixSpec();
  $("mix-value").textContent = spec ? spec.slice($("mix").dataset.model.length + 1) : `${$("style").value} alone`;
}

let mixTimer = null;
function mixChanged() {
  showMix();
  clearTimeout(mixTimer);
  mixTimer = setTimeout(() => sendSettings({ style: settings().style }), 50);
}

function sendSettings(values) {
  const ws = stylecast.ws;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(values));
}

// ---------------------------------------------------------------------------------------------
// On-device mode: the same camera frames, stylized in this browser (ondevice.js), one at a time.
// The switch works both ways on a running camera: the WebSocket closes when it goes on and opens
// again when it goes off. When neither WebGPU nor WASM works the page stays on the server and says why.

const device = (stylecast.device = {
  running: false,      // the frame loop
  framesDrawn: 0,
  reason: null,        // why the page is on the server although the switch asked otherwise
  filter: null,        // the temporal filter of the frames stylized here (steadyDeviceFrame)
  filterKey: null,
  capture: document.createElement("canvas"),
  engine: StylecastDevice,
});

function styleByName(name) {
  return stylecast.styles.find((s) => s.name === name);
}

// The photo's default size: the server scales a larger photo down to the style's native size, where
// its strokes have the painting's proportions (GET /v1/styles: native_size; none for older models).
function nativeSizeLabel() {
  const style = styleByName($("style").value);
  const n = style && style.native_size;
  $("size-native").textContent = n ? `the style's own size (${n} px, strokes as in the painting)` : "the style's own size";
}

async function fetchModel(url) {
  const response = await api(url);  // with the token: the model route follows the API's rules
  if (!response.ok) throw new Error(`model download: ${await errorText(response)}`);
  return response.arrayBuffer();
}

// Called with each styles listing: the switch is offered only when the server has the runtime.
function offerDevice() {
  const rt = stylecast.browserRuntime;
  const box = $("on-device");
  box.disabled = !rt.available;
  box.parentElement.title = rt.available ? `onnxruntime-web ${rt.version}, from this server` : rt.reason;
  if (!rt.available) deviceStatus(`Runs on the server: ${rt.reason}`);
}

function deviceStatus(text) {
  $("device-status").textContent = text;
}

function describeDevice() {
  const engine = StylecastDevice.state;
  const style = styleByName($("style").value);
  const slow = style && style.browser && !style.browser.realtime
    ? ` ${style.name} is not a real-time network: without a GPU it stays far from camera rate; the ⚡ styles are made for this.` : "";
  const notes = engine.notes.map((n) => ` ${n}.`).join("");
  return `Runs on this device: ${StylecastDevice.describe()}.${notes}${slow}`;
}

function setMode(mode) {
  cam.mode = mode;
  device.filter = null;  // no history across a switch (the server's stream starts its own)
  $("backend").textContent = mode === "device" ? StylecastDevice.describe() : "the server";
  if (!cam.running) return;
  if (mode === "device") {
    closeSocket();
    runDeviceLoop();
  } else if (!stylecast.ws) {
    openSocket();
  }
}

function fallBack(reason) {
  $("on-device").checked = false;
  device.reason = reason;
  deviceStatus(`Runs on the server: ${reason}`);
  setMode("server");
}

async function switchDevice(on) {
  if (!on) {
    setMode("server");
    deviceStatus("Runs on the server.");
    return;
  }
  deviceStatus("Starting the in-browser runtime…");
  try {
    await StylecastDevice.start(stylecast.browserRuntime);
  } catch (err) {
    fallBack(err.message || String(err));
    return;
  }
  if (!$("on-device").checked) return;  // switched off while it loaded
  device.reason = null;
  suggestSize(styleByName($("style").value));
  deviceStatus(describeDevice());
  setMode("device");
}

// A camera not yet started gets at most the style's recommended frame size (the nets without the ⚡ badge:
// 320x240); the user's choice is never raised, nor changed on a running camera.
function suggestSize(style) {
  const rec = style && style.browser && style.browser.recommended_size;
  const [w, h] = $("resolution").value.split("x").map(Number);
  if (rec && !cam.running && rec[0] * rec[1] < w * h) $("resolution").value = `${rec[0]}x${rec[1]}`;
}

async function deviceFrame(ctx, video) {
  const style = styleByName($("style").value);
  if (!StylecastDevice.hasSession(style)) deviceStatus(`Loading ${style.name} (${((style.browser.bytes || 0) / 1e6).toFixed(1)} MB)…`);
  drawFrame(device.capture, video);
  const frame = ctx.getImageData(0, 0, cam.width, cam.height);
  const started = performance.now();
  const opts = settings();
  const out = await StylecastDevice.stylize(style, frame, opts, fetchModel);
  if (!cam.running || cam.mode !== "device") return;
  $("output").getContext("2d").putImageData(steadyDeviceFrame(frame, out, opts), 0, 0);
  device.framesDrawn += 1;
  const now = performance.now();
  frameDrawn(now, now - started, StylecastDevice.state.lastRunMs);
  deviceStatus(describeDevice());
}

// The temporal filter in device mode (temporal.js: the server's inference/temporal.py, ported):
// one per run of frames, started over when a setting, the weight or the frame size changes, as the
// server's stream starts over at each settings message. `opts`: the settings the frame was
// stylized with (they may have changed while it ran).
function steadyDeviceFrame(frame, out, opts) {
  const weight = steadyWeight();
  const { width: w, height: h } = frame;
  if (weight === 0) {
    device.filter = null;
    return out;
  }
  const key = JSON.stringify([opts, weight, w, h]);
  if (!device.filter || device.filterKey !== key) {
    device.filter = StylecastTemporal.create({ history: weight });
    device.filterKey = key;
  }
  const rgb = new Float32Array(w * h * 3);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) rgb[3 * i + c] = out.data[4 * i + c] / 255;
  const steady = device.filter.step(frame.data, rgb, w, h);
  const pixels = new Uint8ClampedArray(w * h * 4);  // a clamped store rounds half to even, as numpy.rint
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) pixels[4 * i + c] = steady[3 * i + c] * 255;
    pixels[4 * i + 3] = 255;
  }
  return new ImageData(pixels, w, h);
}

async function runDeviceLoop() {
  if (device.running) return;
  device.running = true;
  const video = $("video");
  device.capture.width = cam.width;
  device.capture.height = cam.height;
  const ctx = device.capture.getContext("2d", { willReadFrequently: true });
  $("cam-status").textContent = `${cam.width}×${cam.height} frames, stylized in this browser`;
  try {
    while (cam.running && cam.mode === "device") {
      if (video.readyState >= 2 && takeFrame(video)) await deviceFrame(ctx, video);
      await new Promise((resolve) => requestAnimationFrame(resolve));
    }
  } catch (err) {
    fallBack(`in-browser inference failed: ${err.message || err}`);
  } finally {
    device.running = false;
  }
}

// For the tests and the console: stylize an encoded image (base64) in this browser, as the
// webcam would; returns a PNG data URL.
device.stylizeBase64 = async (b64, options = {}) => {
  const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes]), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [bitmap.width, bitmap.height];
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  await StylecastDevice.start(stylecast.browserRuntime);
  const opts = { ...settings(), ...options };
  const out = await StylecastDevice.stylize(styleByName(opts.style), ctx.getImageData(0, 0, canvas.width, canvas.height), opts, fetchModel);
  ctx.putImageData(out, 0, 0);
  return canvas.toDataURL("image/png");
};

// ---------------------------------------------------------------------------------------------

function selectTab(name) {
  for (const tab of ["photo", "webcam"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(tab).hidden = tab !== name;
  }
  if (name !== "webcam" && cam.running) stopCam();
}

function setup() {
  $("tab-photo").addEventListener("click", () => selectTab("photo"));
  $("tab-webcam").addEventListener("click", () => selectTab("webcam"));
  $("cam-start").addEventListener("click", startCam);
  $("cam-stop").addEventListener("click", stopCam);
  $("snapshot").addEventListener("click", snapshot);
  const mirror = () => $("video").classList.toggle("mirrored", $("mirror").checked);
  $("mirror").addEventListener("change", mirror);
  mirror();
  listCameras(null).catch(() => {});
  $("on-device").addEventListener("change", (e) => switchDevice(e.target.checked));
  setupPhoto();

  $("style").addEventListener("change", () => {
    markSwatch();
    nativeSizeLabel();
    realtimeHint();
    buildMix();
    sendSettings({ style: settings().style });
    if (!$("photo").hidden) stylizeFile(stylecast.lastFile);
  });
  let strengthTimer = null;
  $("strength").addEventListener("input", () => {
    $("strength-value").textContent = `${$("strength").value}%`;
    clearTimeout(strengthTimer);
    strengthTimer = setTimeout(() => sendSettings({ strength: settings().strength }), 50);
  });
  $("strength").addEventListener("change", () => { if (!$("photo").hidden) stylizeFile(stylecast.lastFile); });
  let steadyTimer = null;
  $("steady").addEventListener("input", () => {
    $("steady-value").textContent = `${$("steady").value}%`;
    clearTimeout(steadyTimer);
    steadyTimer = setTimeout(() => sendSettings({ steady: steadyWeight() }), 50);
  });
  $("preserve").addEventListener("change", () => {
    sendSettings({ preserve_color: $("preserve").checked });
    if (!$("photo").hidden) stylizeFile(stylecast.lastFile);
  });
  $("token").value = stylecast.token;
  $("token-box").addEventListener("submit", (e) => {
    e.preventDefault();
    stylecast.token = $("token").value.trim();
    sessionStorage.setItem("stylecast-token", stylecast.token);
    $("token-box").hidden = true;
    loadStyles();
  });
  pollReady();
  loadStyles();
}

setup();
