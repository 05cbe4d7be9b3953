/* hazwatch live map: assets, tracks, sites, alerts and gateways of the caller's scope.
 *
 * Everything comes from the API (../api/v1/ relative to this page) with the API key the user
 * enters (kept in localStorage); live updates arrive on the WebSocket stream (SSE as fallback).
 * No framework, no build step: Leaflet is vendored under vendor/leaflet.
 */
"use strict";

const API = new URL("../api/v1/", window.location.href);
const STORE = {
  token: "hazwatch.token",
  tiles: "hazwatch.tiles",
  preset: "hazwatch.tilePreset",
  crs: "hazwatch.crs",
};
const PRESETS = {
  osm: { url: "https://tile.openstreetmap.org/{z}/{x}/{y}.png", crs: "wgs84",
    attribution: "© OpenStreetMap contributors" },
  amap: { url: "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
    crs: "gcj02", subdomains: "1234", attribution: "© AMap" },
  none: { url: "", crs: "wgs84" },
};
const TRACK_WINDOW_MS = 30 * 60 * 1000;
const TRACK_MAX_POINTS = 3000;
const CLASS_COLORS = { hazmat_truck: "#e65100", school_bus: "#f9a825", coach: "#6a1b9a",
  fishing_vessel: "#1565c0", other: "#455a64" };
const CLASS_NAMES = { hazmat_truck: "危化品车", school_bus: "校车", coach: "客车",
  fishing_vessel: "渔船", other: "其他" };

const state = {
  token: localStorage.getItem(STORE.token) || "",
  crs: localStorage.getItem(STORE.crs) || "wgs84",
  preset: localStorage.getItem(STORE.preset) || "osm",
  tileUrl: localStorage.getItem(STORE.tiles),
  assets: new Map(),    // id -> asset view (with latest)
  sites: new Map(),     // id -> site view (with points)
  readings: new Map(),  // "site|tag" -> latest reading
  alerts: new Map(),    // id -> alert
  gateways: new Map(),  // id -> gateway view
  layers: { markers: new Map(), tracks: new Map(), sites: new Map() },
  live: null,
  generation: 0,
};
if (state.tileUrl === null) state.tileUrl = PRESETS[state.preset] ? PRESETS[state.preset].url : PRESETS.osm.url;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") node.style.cssText = value;  // CSP allows no style attributes
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clock(ms) {
  if (!ms) return "–";
  const d = new Date(ms);
  const today = new Date();
  const time = d.toLocaleTimeString("zh-CN", { hour12: false });
  return d.toDateString() === today.toDateString() ? time : `${d.toLocaleDateString("zh-CN")} ${time}`;
}

function ago(ms) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function say(text, isError) {
  const box = $("message");
  box.textContent = text || "";
  box.classList.toggle("error", Boolean(isError));
}

// -- API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) { super(`${status}: ${detail}`); this.status = status; }
}

async function api(path, options = {}) {
  const url = new URL(path, API);
  if (options.crs) url.searchParams.set("crs", state.crs);
  const init = { method: options.method || "GET",
    headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" } };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(url, init);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.status === 204 ? null : response.json();
}

// -- map ------------------------------------------------------------------------------------

const map = L.map("map", { preferCanvas: true, zoomControl: true }).setView([31.93, 120.26], 12);
L.control.scale({ imperial: false }).addTo(map);
let tileLayer = null;
const tilesNote = L.control({ position: "bottomleft" });
tilesNote.onAdd = () => el("div", { class: "tiles-note", id: "tiles-note" });
tilesNote.addTo(map);

function setTiles() {
  if (tileLayer) { map.removeLayer(tileLayer); tileLayer = null; }
  const note = $("tiles-note");
  note.textContent = "";
  if (!state.tileUrl) { note.textContent = "no map tiles: vector layers only"; return; }
  const preset = PRESETS[state.preset] || {};
  tileLayer = L.tileLayer(state.tileUrl, {
    maxZoom: 19, subdomains: preset.subdomains || "abc", attribution: preset.attribution || "",
  });
  let failed = 0;
  tileLayer.on("tileerror", () => {
    failed += 1;
    if (failed === 3) note.textContent = "map tiles unreachable: vector layers only";
  });
  tileLayer.on("tileload", () => { failed = 0; note.textContent = ""; });
  tileLayer.addTo(map);
}

function assetColor(asset) { return CLASS_COLORS[asset.asset_class] || CLASS_COLORS.other; }

function assetLabel(asset) { return asset.name || asset.plate || asset.id; }

function placeAsset(asset) {
  const fix = asset.latest;
  if (!fix) return;
  const latlng = [fix.lat, fix.lon];
  let marker = state.layers.markers.get(asset.id);
  if (!marker) {
    marker = L.circleMarker(latlng, { radius: 7, weight: 2, color: "#fff", fillOpacity: 0.95,
      fillColor: assetColor(asset) });
    // A node, not a string: Leaflet puts string content in as HTML, and names are user input.
    marker.bindTooltip(el("span", {}, assetLabel(asset)), { permanent: true, direction: "right", offset: [8, 0],
      className: "asset-label" });
    marker.on("click", () => marker.bindPopup(assetPopup(state.assets.get(asset.id))).openPopup());
    marker.addTo(map);
    state.layers.markers.set(asset.id, marker);
  }
  marker.setLatLng(latlng);
}

function assetPopup(asset) {
  const fix = asset.latest || {};
  return el("div", {},
    el("div", { class: "title" }, assetLabel(asset)),
    el("div", {}, `${CLASS_NAMES[asset.asset_class] || asset.asset_class} · ${asset.id}`),
    el("div", {}, `${fmtSpeed(fix.speed_kmh)} · course ${fix.course ?? "–"}° · ${clock(fix.ts)}`),
    fix.source ? el("div", {}, `source ${fix.source}`) : null);
}

function fmtSpeed(kmh) { return kmh === undefined || kmh === null ? "–" : `${kmh.toFixed(1)} km/h`; }

function track(asset) {
  let line = state.layers.tracks.get(asset.id);
  if (!line) {
    line = L.polyline([], { color: assetColor(asset), weight: 3, opacity: 0.7 }).addTo(map);
    state.layers.tracks.set(asset.id, line);
  }
  return line;
}

function extendTrack(asset, fix) {
  const line = track(asset);
  const points = line.getLatLngs();
  points.push(L.latLng(fix.lat, fix.lon));
  if (points.length > TRACK_MAX_POINTS) points.splice(0, points.length - TRACK_MAX_POINTS);
  line.setLatLngs(points);
}

async function loadTrack(asset, generation) {
  const end = Date.now() + 60000;
  const path = `assets/${encodeURIComponent(asset.id)}/track?start_ms=${end - TRACK_WINDOW_MS}&end_ms=${end}&simplify_m=3`;
  const feature = await api(path, { crs: true });
  if (generation !== state.generation || !feature.geometry) return;
  const coords = feature.geometry.type === "Point" ? [feature.geometry.coordinates] : feature.geometry.coordinates;
  track(asset).setLatLngs(coords.map(([lon, lat]) => [lat, lon]));
}

function siteHasAlarm(siteId) {
  for (const alert of state.alerts.values()) {
    if (alert.site_id === siteId && alert.state !== "closed") return true;
  }
  return false;
}

function placeSite(site) {
  let marker = state.layers.sites.get(site.id);
  const alarm = siteHasAlarm(site.id);
  const style = { radius: 11, weight: 3, color: alarm ? "#c62828" : "#2e7d32",
    fillColor: alarm ? "#ef5350" : "#a5d6a7", fillOpacity: 0.8 };
  if (!marker) {
    marker = L.circleMarker([site.lat, site.lon], style);
    marker.bindTooltip(el("span", {}, site.name || site.id), { permanent: true, direction: "left", offset: [-10, 0],
      className: "asset-label" });
    marker.on("click", () => marker.bindPopup(siteCard(state.sites.get(site.id), "div")).openPopup());
    marker.addTo(map);
    state.layers.sites.set(site.id, marker);
  }
  marker.setStyle(style);
}

function clearMap() {
  for (const group of Object.values(state.layers)) {
    for (const layer of group.values()) map.removeLayer(layer);
    group.clear();
  }
}

// -- panel ----------------------------------------------------------------------------------

function renderAlerts() {
  const list = $("alerts");
  const alerts = [...state.alerts.values()].filter((a) => a.state !== "closed")
    .sort((a, b) => b.opened_ms - a.opened_ms);
  $("alert-count").textContent = String(alerts.length);
  $("alert-count").classList.toggle("hot", alerts.some((a) => a.state === "open"));
  list.replaceChildren(...(alerts.length ? alerts.map(alertItem) : [el("li", { class: "empty" }, "no open alerts")]));
  for (const site of state.sites.values()) placeSite(site);
}

function alertSubject(alert) {
  if (alert.point) return `${alert.site_id || ""} ${alert.point}`.trim();
  if (alert.asset_id) return assetLabel(state.assets.get(alert.asset_id) || { id: alert.asset_id });
  return alert.key;
}

function alertItem(alert) {
  const comment = el("input", { type: "text", placeholder: "comment", "aria-label": "comment" });
  const act = (action) => async (event) => {
    event.target.disabled = true;
    try {
      const updated = await api(`alerts/${encodeURIComponent(alert.id)}/${action}`,
        { method: "POST", body: { comment: comment.value } });
      state.alerts.set(updated.id, updated);
      renderAlerts();
    } catch (err) {
      say(`could not ${action} the alert: ${err.message}`, true);
      event.target.disabled = false;
    }
  };
  const value = alert.value === null || alert.value === undefined ? "" : ` = ${Number(alert.value).toFixed(1)}`;
  const limit = alert.data && alert.data.limit !== undefined && alert.data.limit !== null ? ` (limit ${alert.data.limit})` : "";
  return el("li", { class: `alert ${alert.state}`, dataset: { alert: alert.id, state: alert.state } },
    el("div", { class: "title" }, el("span", { class: `level ${alert.level}` }, alert.level),
      `${alert.kind}: ${alertSubject(alert)}`, el("span", { class: "state" }, alert.state)),
    el("div", { class: "meta" }, `${alert.message || ""}${value}${limit} · opened ${clock(alert.opened_ms)}`),
    alert.acked_by ? el("div", { class: "meta" }, `acknowledged by ${alert.acked_by} ${clock(alert.acked_ms)}${alert.comment ? ": " + alert.comment : ""}`) : null,
    el("div", { class: "actions" }, comment,
      alert.state === "open" ? el("button", { type: "button", class: "ack", onclick: act("acknowledge") }, "Acknowledge") : null,
      el("button", { type: "button", class: "close", onclick: act("close") }, "Close")));
}

function renderAssets() {
  const assets = [...state.assets.values()].sort((a, b) => assetLabel(a).localeCompare(assetLabel(b)));
  $("asset-count").textContent = String(assets.length);
  $("assets").replaceChildren(...(assets.length ? assets.map((asset) => {
    const fix = asset.latest;
    return el("li", { class: "clickable", dataset: { asset: asset.id },
      onclick: () => fix && map.setView([fix.lat, fix.lon], Math.max(map.getZoom(), 14)) },
    el("div", { class: "title" }, el("span", { class: "dot", style: `background:${assetColor(asset)}` }), assetLabel(asset)),
    el("div", { class: "meta" }, `${CLASS_NAMES[asset.asset_class] || asset.asset_class} · ${asset.plate || (asset.mmsi ? "MMSI " + asset.mmsi : asset.id)}`),
    el("div", { class: "meta" }, fix ? `${fmtSpeed(fix.speed_kmh)} · ${fix.lat.toFixed(5)}, ${fix.lon.toFixed(5)} · ${clock(fix.ts)}` : "no position yet"));
  }) : [el("li", { class: "empty" }, "no assets in scope")]));
}

function siteCard(site, tag) {
  const rows = (site.points || []).map((point) => {
    const reading = state.readings.get(`${site.id}|${point.tag}`);
    const limits = point.limits || {};
    const value = reading ? reading.value : null;
    const high = value !== null && ((limits.h !== undefined && value >= limits.h) || (limits.hh !== undefined && value >= limits.hh));
    const low = value !== null && ((limits.l !== undefined && value <= limits.l) || (limits.ll !== undefined && value <= limits.ll));
    return el("li", { dataset: { point: point.tag } }, el("span", {}, point.tag),
      el("span", { class: high || low ? "alarm" : "" },
        value === null ? "–" : `${Number(value).toFixed(2)} ${reading.unit || point.unit || ""}`));
  });
  return el(tag, { dataset: { site: site.id }, class: tag === "li" ? "clickable" : "",
    onclick: tag === "li" ? () => map.setView([site.lat, site.lon], Math.max(map.getZoom(), 14)) : null },
  el("div", { class: "title" }, site.name || site.id),
  el("div", { class: "meta" }, site.id),
  el("ul", { class: "readings" }, rows));
}

function renderSites() {
  const sites = [...state.sites.values()];
  $("sites").replaceChildren(...(sites.length ? sites.map((s) => siteCard(s, "li")) : [el("li", { class: "empty" }, "no sites in scope")]));
}

function renderGateways() {
  const gateways = [...state.gateways.values()];
  $("gateways").replaceChildren(...(gateways.length ? gateways.map((gw) => {
    const health = gw.health || {};
    const devices = Object.entries(health.devices || {});
    const offline = devices.filter(([, s]) => s !== "online").map(([n]) => n);
    return el("li", { dataset: { gateway: gw.id } },
      el("div", { class: "title" }, el("span", { class: `dot ${gw.state}` }), `${gw.name || gw.id}`,
        el("span", { class: "state" }, gw.state)),
      el("div", { class: "meta" }, `${gw.id} · last seen ${ago(gw.last_seen_ms)}`),
      gw.health ? el("div", { class: "meta" },
        `buffer ${health.buffer_depth} items (oldest ${Math.round(health.oldest_age_s || 0)} s) · devices ${devices.length - offline.length}/${devices.length} online`) : null,
      offline.length ? el("div", { class: "meta" }, `offline: ${offline.join(", ")}`) : null);
  }) : [el("li", { class: "empty" }, "no gateways in scope")]));
}

// -- loading and live updates ---------------------------------------------------------------

async function loadAll() {
  const generation = ++state.generation;
  const [assets, sites, alerts, gateways] = await Promise.all([
    api("assets", { crs: true }), api("sites", { crs: true }),
    api("alerts?state=open&state=acknowledged&limit=500"), api("gateways"),
  ]);
  if (generation !== state.generation) return;
  clearMap();
  state.assets = new Map(assets.map((a) => [a.id, a]));
  state.alerts = new Map(alerts.map((a) => [a.id, a]));
  state.gateways = new Map(gateways.map((g) => [g.id, g]));
  state.sites = new Map(sites.map((s) => [s.id, { ...s, points: [] }]));
  renderAssets(); renderAlerts(); renderGateways(); renderSites();
  for (const asset of assets) placeAsset(asset);
  fitAll();
  const now = Date.now();
  await Promise.all([
    ...assets.map((a) => loadTrack(a, generation).catch(() => {})),
    ...sites.map(async (s) => {
      const full = await api(`sites/${encodeURIComponent(s.id)}`, { crs: true });
      if (generation !== state.generation) return;
      state.sites.set(s.id, full);
      await Promise.all(full.points.map(async (p) => {
        const rows = await api(`sites/${encodeURIComponent(s.id)}/points/${encodeURIComponent(p.tag)}/readings?start_ms=${now - 600000}&end_ms=${now + 60000}`);
        if (rows.length) rememberReading(rows[rows.length - 1]);
      }));
    }),
  ]);
  if (generation === state.generation) renderSites();
}

function fitAll() {
  const points = [];
  for (const a of state.assets.values()) if (a.latest) points.push([a.latest.lat, a.latest.lon]);
  for (const s of state.sites.values()) points.push([s.lat, s.lon]);
  if (points.length) map.fitBounds(points, { padding: [40, 40], maxZoom: 14 });
}

function rememberReading(reading) {
  const key = `${reading.site}|${reading.point}`;
  const known = state.readings.get(key);
  if (!known || known.ts <= reading.ts) state.readings.set(key, reading);
}

let siteRender = null;
function onEvent(event) {
  const data = event.data || {};
  if (event.kind === "fix") {
    const asset = state.assets.get(data.asset);
    if (!asset || data.late) return;
    asset.latest = data;
    placeAsset(asset);
    extendTrack(asset, data);
    renderAssets();
  } else if (event.kind === "reading") {
    rememberReading(data);
    // Readings arrive every second per point: redraw the site list at most twice a second.
    siteRender = siteRender || setTimeout(() => { siteRender = null; renderSites(); }, 500);
  } else if (event.kind === "alert") {
    state.alerts.set(data.id, data);
    renderAlerts();
  } else if (event.kind === "gateway") {
    refreshGateways();
  }
}

async function refreshGateways() {
  try {
    const gateways = await api("gateways");
    state.gateways = new Map(gateways.map((g) => [g.id, g]));
    renderGateways();
  } catch (_) { /* shown on the next full load */ }
}

function liveStatus(text, cls) {
  const badge = $("live-status");
  badge.textContent = text;
  badge.className = `live ${cls}`;
}

class LiveStream {
  constructor() { this.closed = false; this.failures = 0; this.socket = null; this.source = null; this.connect(); }

  // The key never goes into a URL (access logs, proxies, referrers): each connection trades it,
  // in the Authorization header, for a single-use ticket valid for a few seconds.
  async url(kind) {
    const url = new URL(kind === "ws" ? "live/ws" : "live/sse", API);
    const { ticket } = await api("live/tickets", { method: "POST" });
    url.searchParams.set("ticket", ticket);
    url.searchParams.set("crs", state.crs);
    if (kind === "ws") url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url;
  }

  async connect() {
    if (this.closed) return;
    liveStatus("connecting…", "retry");
    // Two WebSocket failures in a row (a proxy without upgrade support): use SSE instead.
    const sse = this.failures >= 2 && window.EventSource;
    let url;
    try {
      url = await this.url(sse ? "sse" : "ws");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) { liveStatus("bad key", "off"); return; }
      this.failures += 1;
      this.retry();
      return;
    }
    if (this.closed) return;
    if (sse) return this.connectSse(url);
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onmessage = (msg) => this.message(JSON.parse(msg.data));
    socket.onclose = (event) => {
      if (this.closed) return;
      if (event.code === 4401) { liveStatus("bad key", "off"); return; }
      this.failures += 1;
      this.retry();
    };
  }

  connectSse(url) {
    const source = new EventSource(url);
    this.source = source;
    for (const kind of ["ready", "fix", "reading", "alert", "gateway", "vessel"]) {
      source.addEventListener(kind, (msg) => this.message(JSON.parse(msg.data)));
    }
    // EventSource would reconnect with the same URL, whose ticket is used up: start afresh.
    source.onerror = () => {
      source.close();
      if (this.closed) return;
      this.source = null;
      this.failures += 1;
      this.retry();
    };
  }

  message(event) {
    if (event.kind === "ready") {
      this.failures = 0;
      liveStatus(this.source ? "live (SSE)" : "live", "on");
      $("who").textContent = `${event.role}`;
      return;
    }
    onEvent(event);
  }

  retry() {
    liveStatus("reconnecting…", "retry");
    const delay = Math.min(30000, 1000 * 2 ** Math.min(this.failures, 5)) * (0.5 + Math.random() / 2);
    // After a reconnect, reload everything: events may have been missed meanwhile.
    setTimeout(() => { if (!this.closed) { this.connect(); loadAll().catch(() => {}); } }, delay);
  }

  close() {
    this.closed = true;
    if (this.socket) this.socket.close();
    if (this.source) this.source.close();
    liveStatus("offline", "off");
  }
}

async function start() {
  if (state.live) { state.live.close(); state.live = null; }
  if (!state.token) { say("Enter an API key to see your assets, sites and alerts."); return; }
  say("loading…");
  try {
    await loadAll();
    say("");
    state.live = new LiveStream();
  } catch (err) {
    clearMap();
    for (const name of ["assets", "sites", "alerts", "gateways"]) state[name] = new Map();
    renderAssets(); renderAlerts(); renderGateways(); renderSites();
    $("who").textContent = "";
    if (err instanceof ApiError && err.status === 401) say("This API key is not valid (unknown or revoked).", true);
    else say(`Cannot load: ${err.message}`, true);
  }
}

// -- controls -------------------------------------------------------------------------------

function applySettings() {
  state.preset = $("tile-preset").value;
  state.tileUrl = $("tile-url").value.trim();
  state.crs = $("crs").value;
  localStorage.setItem(STORE.preset, state.preset);
  localStorage.setItem(STORE.tiles, state.tileUrl);
  localStorage.setItem(STORE.crs, state.crs);
  setTiles();
  start();
}

$("token").value = state.token;
$("tile-preset").value = state.preset;
$("tile-url").value = state.tileUrl;
$("crs").value = state.crs;
$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  localStorage.setItem(STORE.token, state.token);
  start();
});
$("settings-toggle").addEventListener("click", () => { $("settings").hidden = !$("settings").hidden; });
$("tile-preset").addEventListener("change", () => {
  const preset = PRESETS[$("tile-preset").value];
  if (preset) { $("tile-url").value = preset.url; $("crs").value = preset.crs; }
});
$("settings-apply").addEventListener("click", applySettings);
setInterval(() => { if (state.live) { refreshGateways(); } }, 15000);
setTiles();
start();
