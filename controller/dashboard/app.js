// scitags-p4 dashboard: everything from the controller's own API, drawn as SVG, no libraries.
// Opened as /?token=TOKEN when the API needs a bearer token: the token is kept in memory,
// sent as the Authorization header of each fetch and removed from the address bar.
"use strict";

(() => {
  const REFRESH_MS = 5000;
  // The window buttons send since=1h|today|24h|7d; the controller picks the step (<= 720 points).
  const TAG_SOURCES = new Set(["flowlabel", "exthdr", "firefly"]); // an experiment's own bytes
  const LIVE_FLOWS_SHOWN = 50, RECENT_FLOWS_SHOWN = 20;
  const HISTORY_REPROBE_MS = 300000;
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
                   "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#2ca02c", "#d62728", "#9467bd"];

  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  if (token !== null) {  // keep it out of the address bar, bookmarks and screenshots
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }

  const state = {
    window: "1h", switchName: "", drill: null, expanded: new Set(), renders: 0,
    historyAvailable: true, historyProbedAt: 0, samples: [], colors: new Map(),
  };
  const $ = (id) => document.getElementById(id);

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path) {
    const headers = {"Accept": "application/json"};
    if (token) headers["Authorization"] = "Bearer " + token;
    const r = await fetch(path, {headers, cache: "no-store", credentials: "omit"});
    let body = null;
    try { body = await r.json(); } catch (_) { body = null; }
    if (!r.ok) throw new HttpError(r.status, (body && body.error) || r.statusText);
    return body;
  }

  function query(path, q) {
    const s = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== null && v !== undefined && v !== "") s.set(k, v);
    const text = s.toString();
    return text ? path + "?" + text : path;
  }

  // ---------- formatting ----------
  function human(bytes) {
    const units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let v = Number(bytes) || 0, i = 0;
    while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    return (i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)) + " " + units[i];
  }
  const integer = (n) => Number(n || 0).toLocaleString("en-US");
  function when(t) {
    if (t === null || t === undefined || t === "") return "";
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    return isNaN(d) ? String(t) : d.toLocaleString();
  }
  function colorOf(name) {
    if (!state.colors.has(name)) state.colors.set(name, PALETTE[state.colors.size % PALETTE.length]);
    return state.colors.get(name);
  }

  // ---------- DOM helpers (textContent only: names come from the registry and fireflies) ----------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v);
      else if (k === "title") e.title = v; else e[k] = v;
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  function fill(tbody, rows, empty, columns) {
    tbody.replaceChildren(...(rows.length ? rows : [el("tr", {class: "empty"}, el("td", {colSpan: columns}, empty))]));
  }
  const bytesCell = (b) => el("td", {class: "num", "data-bytes": String(b), title: integer(b) + " bytes"}, human(b));
  const numCell = (n) => el("td", {class: "num"}, integer(n));

  // ---------- data ----------
  async function load() {
    const sw = state.switchName || null;
    const win = {since: state.window, switch: sw};
    const wantHistory = state.historyAvailable || Date.now() - state.historyProbedAt > HISTORY_REPROBE_MS;
    const [status, counters, flows, hist] = await Promise.all([
      api("/api/v1/status"),
      windowCounters(win),
      api(query("/api/v1/flows", {recent: RECENT_FLOWS_SHOWN, limit: LIVE_FLOWS_SHOWN})),
      wantHistory ? loadHistory(win) : Promise.resolve(null),
    ]);
    return {status, counters, flows, hist};
  }

  async function windowCounters(win) {
    // A controller without history answers totals only: it ignores since (no "since" in the answer).
    const c = await api(query("/api/v1/counters", win));
    c.windowed = c.since !== undefined;
    return c;
  }

  async function loadHistory(win) {
    const q = {...win};
    if (state.drill) q.experiment = state.drill;
    try {
      const h = await api(query("/api/v1/history", q));
      state.historyAvailable = true;
      return h;
    } catch (e) {
      if (e instanceof HttpError && e.status === 404) {  // an older controller: no history kept
        state.historyAvailable = false;
        state.historyProbedAt = Date.now();
        return null;
      }
      throw e;
    }
  }

  // ---------- rendering ----------
  function render(data) {
    renderSwitches(data.status);
    renderTable(data.counters);
    renderBuckets(data.counters);
    renderRefusals(data.status.fireflies || {});
    renderFlows(data.flows);
    if (data.hist) renderHistory(data.hist); else renderSamples(data.counters);
    const fallback = !data.hist;
    const notice = $("notice");
    notice.hidden = !fallback;
    notice.textContent = fallback ? "History is unavailable on this controller: the table shows the " +
      "totals since it first counted, the chart the traffic seen since this page was opened." : "";
    $("updated").textContent = new Date().toLocaleTimeString();
    $("error").hidden = true;
    state.renders++;
    document.body.dataset.renders = String(state.renders);
    if (document.body.dataset.state !== "ready") {
      document.body.dataset.state = "ready";
      performance.mark("scitags:data-shown");  // the benchmark's "data shown" marker
    }
  }

  function renderSwitches(status) {
    const names = Object.keys(status.switches || {}).sort();
    $("switches").replaceChildren(...names.map((n) => {
      const s = status.switches[n];
      const cls = s.ready ? (s.primary ? "ok" : "backup") : "down";
      return el("span", {class: "switch " + cls, "data-switch": n, "data-status": s.status,
                         title: (s.error || s.status) + (s.primary ? ", primary" : "")},
                n + ": " + s.status + (s.ready && !s.primary ? " (backup)" : ""));
    }));
    const select = $("switch");
    const have = Array.from(select.options).map((o) => o.value).filter(Boolean);
    if (have.join() !== names.join()) {
      select.replaceChildren(el("option", {value: ""}, "all"), ...names.map((n) => el("option", {value: n}, n)));
      select.value = names.includes(state.switchName) ? state.switchName : "";
    }
  }

  function windowLabel(c) {
    return c.windowed ? `${when(c.since)} – ${when(c.until)}${c.timezone ? " (" + c.timezone + ")" : ""}`
                      : "totals since the controller first counted";
  }

  function experimentRows(rows) {
    const exps = new Map();
    for (const r of rows) {
      if (!TAG_SOURCES.has(r.source)) continue;
      const e = exps.get(r.experiment) || {name: r.experiment, bytes: 0, packets: 0, activities: new Map()};
      e.bytes += r.bytes; e.packets += r.packets;
      const a = e.activities.get(r.activity) || {name: r.activity, bytes: 0, packets: 0};
      a.bytes += r.bytes; a.packets += r.packets;
      e.activities.set(r.activity, a);
      exps.set(r.experiment, e);
    }
    return Array.from(exps.values()).sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
  }

  function renderTable(c) {
    $("table-window").textContent = windowLabel(c) + (state.switchName ? ", switch " + state.switchName :
      ", summed over the switches");
    const exps = experimentRows(c.counters || []);
    const total = exps.reduce((s, e) => s + e.bytes, 0);
    const share = (b) => total ? (100 * b / total).toFixed(1) + " %" : "–";
    const few = exps.reduce((s, e) => s + e.activities.size, 0) <= 40;
    const rows = [];
    for (const e of exps) {
      const open = few || state.expanded.has(e.name) || state.drill === e.name;
      const name = el("td", {class: "name"}, el("span", {class: "swatch", "data-color": colorOf(e.name)}), e.name);
      const tr = el("tr", {class: "experiment" + (state.drill === e.name ? " selected" : ""),
                           "data-experiment": e.name, "data-bytes": String(e.bytes),
                           "data-packets": String(e.packets), title: "show its activities"},
                    name, bytesCell(e.bytes), numCell(e.packets), el("td", {class: "num"}, share(e.bytes)));
      tr.addEventListener("click", () => drillTo(state.drill === e.name ? null : e.name));
      rows.push(tr);
      if (!open) continue;
      const acts = Array.from(e.activities.values()).sort((a, b) => b.bytes - a.bytes);
      for (const a of acts) {
        rows.push(el("tr", {class: "activity", "data-experiment": e.name, "data-activity": a.name,
                            "data-bytes": String(a.bytes), "data-packets": String(a.packets)},
                     el("td", {class: "name"}, a.name === "*" ? "(any other activity)" : a.name),
                     bytesCell(a.bytes), numCell(a.packets), el("td", {class: "num"}, share(a.bytes))));
      }
    }
    fill($("experiments").tBodies[0], rows, "no tagged traffic in this window", 4);
    paintSwatches();
  }

  function renderBuckets(c) {
    const rows = (c.counters || []).filter((r) => r.source === "bucket")
      .sort((a, b) => b.bytes - a.bytes || a.switch.localeCompare(b.switch))
      .map((r) => el("tr", {"data-bucket": r.bucket, "data-switch": r.switch, "data-bytes": String(r.bytes)},
                     el("td", {}, r.switch), el("td", {}, r.bucket), bytesCell(r.bytes), numCell(r.packets)));
    fill($("buckets").tBodies[0], rows, "nothing in the buckets", 4);
  }

  function renderRefusals(ff) {
    $("fireflies-accepted").textContent = `${integer(ff.accepted)} accepted`;
    const refused = Object.entries(ff.refused || {}).sort((a, b) => b[1] - a[1]);
    const rows = refused.map(([reason, n]) => el("tr", {"data-reason": reason, class: n ? "" : "zero"},
                                                  el("td", {}, reason), numCell(n)));
    fill($("refusals").tBodies[0], rows, "no refusals", 2);
  }

  function flowName(f) {
    const port = (p) => (p === null || p === undefined ? "" : ":" + p);
    const proto = {6: "tcp", 17: "udp", 58: "icmpv6", 1: "icmp"}[f.protocol] || f.protocol || "";
    return `${f.src}${port(f.src_port)} → ${f.dst}${port(f.dst_port)} ${proto}`;
  }
  function tagName(f) {
    const e = f.experiment_name || f.experiment || f.experiment_id;
    const a = f.activity_name || f.activity || f.activity_id;
    return `${e} / ${a}`;
  }

  function renderFlows(flows) {
    const all = flows.live || [];
    const live = all.length > LIVE_FLOWS_SHOWN ? [...all].sort((a, b) => b.bytes - a.bytes).slice(0, LIVE_FLOWS_SHOWN) : all;
    const count = flows.live_total !== undefined ? flows.live_total : all.length;
    $("flows-count").textContent = count > live.length
      ? `${integer(count)} live flows: the ${live.length} with the most bytes, ${integer(count - live.length)} more not shown`
      : `${integer(count)} live flows`;
    fill($("flows-live").tBodies[0], live.map((f) => el("tr", {"data-flow": f.flow, "data-bytes": String(f.bytes)},
      el("td", {class: "mono"}, flowName(f)), el("td", {}, tagName(f)), el("td", {}, f.state || ""),
      el("td", {}, (f.installed_on || []).join(", ")), el("td", {}, when(f.started)),
      bytesCell(f.bytes), numCell(f.packets))), "no live firefly flows", 7);
    const recent = (flows.recent || []).slice(0, RECENT_FLOWS_SHOWN);
    fill($("flows-recent").tBodies[0], recent.map((f) => el("tr", {"data-flow": f.flow || "", "data-bytes": String(f.bytes)},
      el("td", {class: "mono"}, flowName(f)), el("td", {}, tagName(f)), el("td", {}, when(f.ended)),
      el("td", {}, f.end_reason || ""), bytesCell(f.bytes), numCell(f.packets))), "no flow ended yet", 6);
  }

  // ---------- chart ----------
  // columns: [{t, values: Map(key -> bytes)}], each column `step` seconds wide.
  function seriesKey(s) { return state.drill ? s.activity : s.experiment; }

  function renderHistory(h) {
    const since = Date.parse(h.since) / 1000, until = Date.parse(h.until) / 1000;
    const columns = new Map();
    for (const s of h.series || []) {
      if (!TAG_SOURCES.has(s.source)) continue;
      if (state.drill && s.experiment !== state.drill) continue;
      const key = seriesKey(s);
      for (const [t, , b] of s.points) {
        const col = columns.get(t) || {t, values: new Map()};
        col.values.set(key, (col.values.get(key) || 0) + b);
        columns.set(t, col);
      }
    }
    $("chart-window").textContent = `${when(h.since)} – ${when(h.until)} (${h.timezone || "local time"}), ` +
      `bytes per ${stepName(h.step_s)}`;
    drawChart(Array.from(columns.values()), since, until, h.step_s, h.gaps || []);
  }

  function renderSamples(c) {
    // No history: the chart shows what moved between the page's own refreshes.
    const totals = new Map();
    for (const r of c.counters || []) {
      if (!TAG_SOURCES.has(r.source) || (state.drill && r.experiment !== state.drill)) continue;
      const key = state.drill ? r.activity : r.experiment;
      totals.set(key, (totals.get(key) || 0) + r.bytes);
    }
    const now = Date.now() / 1000;
    state.samples.push({t: now, totals});
    const cutoff = now - 3600;
    while (state.samples.length > 2 && state.samples[0].t < cutoff) state.samples.shift();
    const columns = [];
    for (let i = 0; i < state.samples.length; i++) {
      const cur = state.samples[i], before = i ? state.samples[i - 1] : null;
      const values = new Map();
      for (const [k, v] of cur.totals) values.set(k, before ? Math.max(0, v - (before.totals.get(k) || 0)) : v);
      columns.push({t: cur.t, values});
    }
    const first = state.samples[0].t;
    $("chart-window").textContent = "since this page was opened (first column: the totals then), bytes per refresh";
    drawChart(columns, Math.min(first, now - 600), now + REFRESH_MS / 1000, REFRESH_MS / 1000, []);
  }

  function stepName(s) {
    return s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`;
  }

  function drawChart(columns, since, until, step, gaps) {
    const chart = $("chart");
    const W = 960, H = 300, left = 70, right = 10, top = 10, bottom = 24;
    const plotW = W - left - right, plotH = H - top - bottom;
    const span = Math.max(1, until - since);
    const x = (t) => left + (t - since) / span * plotW;
    const keys = new Map();  // key -> total bytes in the window (legend order)
    let maxStack = 0;
    for (const col of columns) {
      let sum = 0;
      for (const [k, v] of col.values) { sum += v; keys.set(k, (keys.get(k) || 0) + v); }
      maxStack = Math.max(maxStack, sum);
    }
    const order = Array.from(keys.entries()).sort((a, b) => b[1] - a[1]).map(([k]) => k);
    const yMax = niceCeil(maxStack);
    const y = (v) => top + plotH - v / yMax * plotH;
    const parts = [];
    for (const [g0, g1] of gaps) {  // the controller was not running: no data, not zero traffic
      const x0 = Math.max(left, x(g0)), x1 = Math.min(left + plotW, x(g1));
      if (x1 > x0) parts.push(svg("rect", {class: "gap", x: x0, y: top, width: x1 - x0, height: plotH}));
    }
    for (let i = 0; i <= 4; i++) {  // y grid and labels
      const v = yMax * i / 4, yy = y(v);
      parts.push(svg("line", {class: "grid", x1: left, x2: left + plotW, y1: yy, y2: yy}));
      const label = svg("text", {class: "axis", x: left - 6, y: yy + 4, "text-anchor": "end"});
      label.textContent = human(v);
      parts.push(label);
    }
    for (const t of timeTicks(since, until)) {
      const label = svg("text", {class: "axis", x: x(t), y: H - 6, "text-anchor": "middle"});
      label.textContent = tickLabel(t, span);
      parts.push(label, svg("line", {class: "tick", x1: x(t), x2: x(t), y1: top + plotH, y2: top + plotH + 4}));
    }
    const barW = Math.max(1, step / span * plotW - 1);
    const base = new Map();  // column t -> stacked height so far
    for (const key of order) {
      const g = svg("g", {class: "series", "data-key": key, "data-bytes": String(keys.get(key)), fill: colorOf(key)});
      for (const col of columns) {
        const v = col.values.get(key) || 0;
        if (!v) continue;
        const b0 = base.get(col.t) || 0;
        const r = svg("rect", {x: x(col.t), y: y(b0 + v), width: barW, height: Math.max(0.5, y(b0) - y(b0 + v)),
                               "data-t": String(col.t), "data-bytes": String(v)});
        const tip = svg("title", {});
        tip.textContent = `${key}: ${human(v)} at ${when(col.t)}`;
        r.append(tip);
        g.append(r);
        base.set(col.t, b0 + v);
      }
      if (!state.drill) g.addEventListener("click", () => drillTo(key));
      parts.push(g);
    }
    parts.push(svg("line", {class: "axisline", x1: left, x2: left + plotW, y1: top + plotH, y2: top + plotH}));
    chart.replaceChildren(...parts);
    $("legend").replaceChildren(...order.map((k) => {
      const item = el("button", {type: "button", class: "legend-item", "data-key": k,
                                 title: state.drill ? "" : "show its activities"},
                      el("span", {class: "swatch", "data-color": colorOf(k)}), `${k} ${human(keys.get(k))}`);
      if (!state.drill) item.addEventListener("click", () => drillTo(k));
      return item;
    }));
    if (!order.length) $("legend").append(el("span", {class: "sub"}, "no tagged traffic in this window"));
    if (gaps.length) $("legend").append(el("span", {class: "legend-gap"}, el("span", {class: "swatch gap"}),
                                           "no controller running (no data)"));
    paintSwatches();
  }

  function paintSwatches() {  // colours set through the CSSOM (the page's CSP has no inline styles)
    for (const s of document.querySelectorAll(".swatch[data-color]")) s.style.background = s.dataset.color;
  }

  function niceCeil(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function timeTicks(since, until) {
    const span = until - since;
    const steps = [60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400];
    const step = steps.find((s) => span / s <= 8) || 86400;
    const out = [];
    for (let t = Math.ceil(since / step) * step; t <= until; t += step) out.push(t);
    return out;
  }

  function tickLabel(t, span) {
    const d = new Date(t * 1000);
    const hm = d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
    return span > 86400 ? d.toLocaleDateString([], {month: "short", day: "numeric"}) + " " + hm : hm;
  }

  // ---------- interaction and the refresh loop ----------
  function drillTo(experiment) {
    state.drill = experiment;
    $("drill").hidden = !experiment;
    $("drill-name").textContent = experiment || "";
    $("chart-title").textContent = experiment ? `Traffic of ${experiment} per activity` : "Traffic per experiment";
    state.samples = [];
    refresh();
  }

  let timer = null, running = false, again = false;
  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    clearTimeout(timer);
    const t0 = performance.now();
    try {
      render(await load());
      document.body.dataset.refreshMs = (performance.now() - t0).toFixed(1);
    } catch (e) {
      const box = $("error");
      box.hidden = false;
      box.textContent = e instanceof HttpError && e.status === 401
        ? "The controller's API needs a token: open this page as /?token=YOUR_TOKEN."
        : `Cannot load data from the controller: ${e.message}`;
      document.body.dataset.error = e instanceof HttpError ? String(e.status) : "network";
    } finally {
      running = false;
      timer = setTimeout(refresh, REFRESH_MS);
      if (again) { again = false; refresh(); }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const b of document.querySelectorAll("#windows button")) {
      b.addEventListener("click", () => {
        state.window = b.dataset.window;
        for (const o of document.querySelectorAll("#windows button")) o.classList.toggle("active", o === b);
        state.samples = [];
        refresh();
      });
    }
    $("switch").addEventListener("change", (ev) => { state.switchName = ev.target.value; state.samples = []; refresh(); });
    $("drill-back").addEventListener("click", () => drillTo(null));
    refresh();
  });
})();
