/* Gateway ops dashboard. Reads GET /api/workstations, /metrics and the gateway's ops
   endpoints (found in /dashboard/endpoints.json, the gateway's public endpoint table),
   with the operator's API key. Traditional Chinese first; English on the toggle. */
"use strict";

const EN = {
  "title": "Gateway operations", "nav.overview": "Overview", "nav.dead": "Dead letters", "nav.audit": "Audit trail", "logout": "Log out",
  "login.title": "Operator login", "login.help": "Enter an ops API key (made by nhigw gateway add-client --ops). It is kept in this tab only.", "login.go": "Log in",
  "t.online": "Workstations online", "t.queue": "Queue depth", "t.oldest": "Oldest pending", "t.retries": "Upstream retries", "t.dead": "Dead letters", "t.breaker": "Breaker",
  "ws.title": "Workstations", "ws.id": "Workstation", "ws.online": "Online", "ws.reader": "Reader", "ws.version": "Agent version", "ws.seen": "Last seen", "ws.cert": "HTTPS certificate ends",
  "chart.title": "NHI cloud latency and error rate", "chart.help": "Sampled from /metrics (every 3 s by default), since this page was opened.", "chart.lat": "mean latency (ms)", "chart.err": "error rate (%)",
  "dead.title": "Dead letters", "dead.help": "Requests that failed after several deliveries. Retry puts one back on the queue; discard drops it and a waiting HIS gets a clear error.",
  "dead.route": "Route", "dead.tries": "Deliveries", "dead.at": "Time",
  "audit.title": "Audit trail", "audit.since": "From", "audit.until": "To", "audit.outcome": "Outcome", "audit.all": "all", "audit.ok": "success", "audit.fail": "failure",
  "audit.search": "Search", "audit.export": "Export CSV", "audit.client": "Client", "audit.patient": "Patient (masked)", "audit.attempts": "Attempts",
};
const ZH = {
  "online": "線上", "offline": "離線", "retry": "重試", "discard": "捨棄", "none": "無", "empty": "目前沒有死信。",
  "closed": "關閉 (正常)", "open": "開啟 (暫停呼叫)", "half": "半開 (試探)",
  "waiting": "閘道尚未提供此端點 (等待佇列/稽核功能上線)。", "nometrics": "閘道尚未提供 /metrics。", "loginfail": "金鑰無效。",
  "records": "筆", "retried": "已重新排入佇列", "discarded": "已捨棄", "confirm.discard": "確定捨棄這筆請求？", "ago": "秒前", "open-mode": "本機開放模式", "days": "天", "ca": "CA",
};
const ZH_EN = {
  "online": "online", "offline": "offline", "retry": "Retry", "discard": "Discard", "none": "none", "empty": "No dead letters.",
  "closed": "closed", "open": "open", "half": "half-open",
  "waiting": "The gateway does not serve this endpoint yet (queue / audit pending).", "nometrics": "The gateway serves no /metrics yet.", "loginfail": "Unknown key.",
  "records": "records", "retried": "re-queued", "discarded": "discarded", "confirm.discard": "Discard this request?", "ago": "s ago", "open-mode": "open on loopback", "days": "d", "ca": "CA",
};
let LANG = localStorage.getItem("nhigw.lang") || "zh";
// Seconds between /metrics samples (the chart's resolution); ?sample_s= overrides it.
const SAMPLE_S = Math.max(0.2, Number(new URLSearchParams(location.search).get("sample_s")) || 3);
const t = (k) => (LANG === "en" ? ZH_EN[k] : ZH[k]) || k;
const $ = (id) => document.getElementById(id);

function applyLang() {
  document.documentElement.lang = LANG === "en" ? "en" : "zh-Hant";
  for (const el of document.querySelectorAll("[data-i18n]")) {
    if (el.dataset.zh === undefined) el.dataset.zh = el.textContent;
    const k = el.dataset.i18n;
    el.textContent = LANG === "en" && EN[k] !== undefined ? EN[k] : el.dataset.zh;
  }
  $("lang").textContent = LANG === "en" ? "中文" : "English";
}

// ------------------------------------------------------------------ API with the operator's key

const EP = { workstations: "/api/workstations", metrics: "/metrics", deadList: null, deadRetry: null, deadDiscard: null, deadDiscardMethod: "DELETE", audit: null };
let openMode = true;

async function call(method, path, body) {
  const headers = {};
  const key = sessionStorage.getItem("nhigw.opkey");
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) { showLogin(true); throw new Error("401"); }
  const text = await r.text();
  let data;
  try { data = text ? JSON.parse(text) : {}; } catch (e) { data = text; }
  // A coded answer is HTTP 200 even when refused: success is HTTP 2xx and statusCode 0 (or none).
  const coded = data && typeof data === "object" && typeof data.statusCode === "number";
  return { status: r.status, ok: r.ok && (!coded || data.statusCode === 0), data };
}

function showLogin(on) {
  $("login").hidden = !on;
  if (on) openMode = false;
}

async function discover() {
  try {
    const r = await fetch("/dashboard/endpoints.json");
    const d = await r.json();
    if (!d.metrics) EP.metrics = null;
    for (const e of d.endpoints || []) {
      const p = e.path, m = e.method.toUpperCase();
      const dead = /dead/i.test(p), templ = /\{/.test(p);
      if (dead && m === "GET" && !templ) EP.deadList = p;
      else if (dead && /retry/i.test(p)) EP.deadRetry = p;
      else if (dead && /discard/i.test(p)) { EP.deadDiscard = p; EP.deadDiscardMethod = m; }
      else if (dead && m === "DELETE" && templ && !EP.deadDiscard) { EP.deadDiscard = p; EP.deadDiscardMethod = "DELETE"; }
      else if (/audit/i.test(p) && m === "GET" && !/verify|export|head/i.test(p) && !templ) EP.audit = p;
    }
  } catch (e) { /* keep defaults */ }
}

const fillPath = (tpl, id) => tpl.replace(/\{[^}]+\}/, encodeURIComponent(id));

function firstArray(d, prefer) {
  if (Array.isArray(d)) return d;
  if (d && typeof d === "object") {
    for (const k of prefer) if (Array.isArray(d[k])) return d[k];
    for (const v of Object.values(d)) if (Array.isArray(v)) return v;
  }
  return [];
}

// ------------------------------------------------------------------ overview

// The agent's HTTPS certificates (presence "tls", epoch seconds): the server's, renewed by the agent itself,
// and its local CA's (a new one needs nhigw agent trust again). Under CERT_WARN_DAYS left: warn; past: bad.
const CERT_WARN_DAYS = 14;
function certCell(tls) {
  if (!tls) return td("—");
  const now = Date.now() / 1000;
  const left = (end) => Math.floor((end - now) / 86400);
  const day = (end) => new Date(end * 1000).toISOString().slice(0, 10);
  const least = Math.min(left(tls.serverNotAfter), left(tls.caNotAfter));
  const cell = td(`${day(tls.serverNotAfter)} (${left(tls.serverNotAfter)} ${t("days")}) · ${t("ca")} ${day(tls.caNotAfter)}`,
    least < 0 ? "bad" : least < CERT_WARN_DAYS ? "warn" : "");
  cell.dataset.serverNotAfter = String(tls.serverNotAfter);
  cell.dataset.caNotAfter = String(tls.caNotAfter);
  return cell;
}

function td(text, cls) { const el = document.createElement("td"); el.textContent = text === undefined || text === null ? "" : String(text); if (cls) el.className = cls; return el; }

async function loadWorkstations() {
  const r = await call("GET", EP.workstations);
  const list = firstArray(r.data, ["workstations"]);
  const tb = $("ws-table").querySelector("tbody");
  tb.textContent = "";
  for (const w of list) {
    const st = w.states || {};
    const tr = document.createElement("tr");
    tr.dataset.ws = w.workstation;
    tr.dataset.online = w.online ? "1" : "0";
    tr.append(td(w.workstation, "mono"), td(w.online ? t("online") : t("offline"), w.online ? "ok" : "bad"), td(st.reader || "—"),
      td(st.sam, "num"), td(st.hpc, "num"), td(st.hc, "num"), td(w.version), td(w.lastSeenAgo_s !== undefined ? `${Number(w.lastSeenAgo_s).toFixed(1)} ${t("ago")}` : ""), certCell(w.tls));
    tb.appendChild(tr);
  }
  $("m-online").textContent = `${list.filter((w) => w.online).length} / ${list.length}`;
}

function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const kv of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    (out[m[1]] = out[m[1]] || []).push({ labels, value: Number(m[4]) });
  }
  return out;
}
const sum = (M, name, pred) => (M[name] || []).filter((s) => !pred || pred(s.labels)).reduce((a, s) => a + s.value, 0);
const has = (M, name) => M[name] !== undefined;

const samples = [];
let lastTotals = null;
async function loadMetrics() {
  if (!EP.metrics) { $("metrics-note").textContent = t("nometrics"); return; }
  const r = await call("GET", EP.metrics);
  if (!r.ok || typeof r.data !== "string") { $("metrics-note").textContent = t("nometrics"); return; }
  const M = parseMetrics(r.data);
  const g = (n) => (has(M, n) ? sum(M, n) : null);
  const q = g("nhigw_gateway_queue_length"), pend = g("nhigw_gateway_queue_pending");
  $("m-queue").textContent = q === null ? "—" : `${q}${pend ? ` (${pend} pending)` : ""}`;
  const oldest = g("nhigw_gateway_queue_oldest_pending_seconds");
  $("m-oldest").textContent = oldest === null ? "—" : `${oldest.toFixed(1)} s`;
  const retries = g("nhigw_gateway_upstream_retries_total");
  $("m-retries").textContent = retries === null ? "—" : String(retries);
  const dead = g("nhigw_gateway_dead_letters");
  $("m-dead").textContent = dead === null ? "—" : String(dead);
  const br = g("nhigw_gateway_breaker_state");
  const bEl = $("m-breaker");
  bEl.textContent = br === null ? "—" : [t("closed"), t("open"), t("half")][br] || String(br);
  bEl.dataset.state = br === null ? "" : String(br);
  // Latency and error rate over time: deltas between samples.
  const lat = has(M, "nhigw_gateway_upstream_seconds_sum") ? "nhigw_gateway_upstream_seconds" : "nhigw_gateway_request_seconds";
  const totals = {
    at: Date.now(), n: sum(M, "nhigw_gateway_requests_total"), bad: sum(M, "nhigw_gateway_requests_total", (l) => l.statusCode !== "0"),
    s: sum(M, `${lat}_sum`), c: sum(M, `${lat}_count`),
  };
  if (lastTotals) {
    const dn = totals.n - lastTotals.n, dc = totals.c - lastTotals.c;
    samples.push({ at: totals.at, latMs: dc > 0 ? (1000 * (totals.s - lastTotals.s)) / dc : null, errPct: dn > 0 ? (100 * (totals.bad - lastTotals.bad)) / dn : null });
    if (samples.length > 200) samples.shift();
    drawChart();
  }
  lastTotals = totals;
  $("metrics-note").textContent = "";
}

function drawChart() {
  const svg = $("chart"), W = 800, H = 220, P = 30;
  const lats = samples.map((s) => s.latMs).filter((v) => v !== null);
  const maxLat = Math.max(10, ...lats) * 1.1;
  const n = Math.max(samples.length - 1, 1);
  const x = (i) => P + ((W - 2 * P) * i) / n;
  const yL = (v) => H - P - ((H - 2 * P) * v) / maxLat;
  const yE = (v) => H - P - ((H - 2 * P) * v) / 100;
  const line = (key, y) => samples.map((s, i) => (s[key] === null ? null : `${x(i).toFixed(1)},${y(s[key]).toFixed(1)}`)).filter(Boolean).join(" ");
  svg.innerHTML = `
    <line x1="${P}" y1="${H - P}" x2="${W - P}" y2="${H - P}" class="axis"/>
    <line x1="${P}" y1="${P}" x2="${P}" y2="${H - P}" class="axis"/>
    <line x1="${W - P}" y1="${P}" x2="${W - P}" y2="${H - P}" class="axis"/>
    <text x="${P - 4}" y="${P + 4}" class="tick" text-anchor="end">${maxLat.toFixed(0)}</text>
    <text x="${P - 4}" y="${H - P}" class="tick" text-anchor="end">0</text>
    <text x="${W - P + 4}" y="${P + 4}" class="tick">100%</text>
    <text x="${W - P + 4}" y="${H - P}" class="tick">0%</text>
    <polyline class="lat" points="${line("latMs", yL)}"/>
    <polyline class="errr" points="${line("errPct", yE)}"/>`;
  svg.dataset.points = String(samples.length);
  svg.dataset.latPoints = String(lats.length);
}

// ------------------------------------------------------------------ dead letters

function fmtTime(v) {
  if (v === undefined || v === null || v === "") return "";
  const d = typeof v === "number" ? new Date(v < 1e12 ? v * 1000 : v) : new Date(v);
  return isNaN(d) ? String(v) : d.toLocaleString(LANG === "en" ? "en-GB" : "zh-TW", { hour12: false });
}

async function loadDead() {
  const tb = $("dead-table").querySelector("tbody");
  if (!EP.deadList) { $("dead-msg").textContent = t("waiting"); return; }
  const r = await call("GET", EP.deadList);
  if (r.status === 404) { $("dead-msg").textContent = t("waiting"); return; }
  const list = firstArray(r.data, ["deadLetters", "dead", "items"]);
  tb.textContent = "";
  for (const d of list) {
    const job = d.job || {};
    const tr = document.createElement("tr");
    tr.dataset.id = d.id;
    const act = document.createElement("td");
    // A write that may have landed offers no plain retry (the API refuses it and names the audited resend).
    const acts = Array.isArray(d.actions) ? d.actions : ["retry", "discard"];
    for (const [label, fn, cls] of [[t("retry"), () => deadAction(d.id, "retry"), "retry"], [t("discard"), () => deadAction(d.id, "discard"), "discard"]].filter(([, , c]) => acts.includes(c))) {
      const b = document.createElement("button"); b.type = "button"; b.className = cls; b.textContent = label; b.addEventListener("click", fn); act.appendChild(b);
    }
    tr.append(td(d.id, "mono"), td(d.route || d.path || job.path), td(d.workstation || job.workstation || "—"), td(d.deliveries, "num"), td(fmtTime(d.deadAt || d.enqueuedAt || job.enqueuedAt)), act);
    tb.appendChild(tr);
  }
  $("dead-msg").textContent = list.length ? "" : t("empty");
}

async function deadAction(id, what) {
  if (what === "discard" && !window.confirm(t("confirm.discard"))) return;
  const tpl = what === "retry" ? EP.deadRetry : EP.deadDiscard;
  if (!tpl) { $("dead-msg").textContent = t("waiting"); return; }
  const r = await call(what === "retry" ? "POST" : EP.deadDiscardMethod, fillPath(tpl, id));
  $("dead-msg").textContent = r.ok ? `${id}: ${t(what === "retry" ? "retried" : "discarded")}` : JSON.stringify(r.data);
  $("dead-msg").dataset.last = r.ok ? `${what}:${id}` : "";
  loadDead();
  loadMetrics();
}

// ------------------------------------------------------------------ audit

const ID_RE = /\b([A-Z][12489]\d{8})\b/g;
const mask = (s) => (typeof s === "string" ? s.replace(ID_RE, (m) => `${m.slice(0, 3)}*****${m.slice(-2)}`) : s);
let auditRows = [];

function auditFilter() {
  const since = $("f-since").value ? new Date($("f-since").value) : null;
  const until = $("f-until").value ? new Date($("f-until").value) : null;
  return { since, until, ws: $("f-ws").value.trim(), route: $("f-route").value.trim(), outcome: $("f-outcome").value };
}

async function loadAudit() {
  if (!EP.audit) { $("audit-msg").textContent = t("waiting"); return; }
  const f = auditFilter();
  const qs = new URLSearchParams();
  if (f.since) qs.set("since", f.since.toISOString());
  if (f.until) qs.set("until", f.until.toISOString());
  if (f.ws) qs.set("workstation", f.ws);
  if (f.route) qs.set("route", f.route);
  if (f.outcome) qs.set("outcome", f.outcome);
  qs.set("order", "desc");  // the newest page (the gateway pages its audit: 1,000 records at most per call)
  const r = await call("GET", `${EP.audit}?${qs}`);
  if (r.status === 404) { $("audit-msg").textContent = t("waiting"); return; }
  // Filter here as well: the page shows what was asked even if the server ignores a filter.
  auditRows = firstArray(r.data, ["records", "audit"]).slice().reverse().filter((a) => {
    const at = new Date(a.recorded || a.time || 0);
    if (f.since && at < f.since) return false;
    if (f.until && at > f.until) return false;
    if (f.ws && !(a.workstation || "").includes(f.ws)) return false;
    if (f.route && !(a.route || "").includes(f.route)) return false;
    if (f.outcome === "ok" && a.outcome !== 0) return false;
    if (f.outcome === "fail" && a.outcome === 0) return false;
    return true;
  });
  const tb = $("audit-table").querySelector("tbody");
  tb.textContent = "";
  for (const a of auditRows.slice(-500).reverse()) {
    const tr = document.createElement("tr");
    tr.append(td(a.seq, "num"), td(fmtTime(a.recorded)), td(a.route, "mono"), td(a.workstation || "—"), td(a.client), td(mask(a.patient) || "—", "mono"),
      td(mask(a.hpc) || "—", "mono"), td(a.outcome === 0 ? "✓" : `✗ ${a.outcome}`, a.outcome === 0 ? "ok" : "bad"), td(a.statusCode, "num"),
      td((a.attempts || []).length, "num"), td(a.latency_ms !== undefined ? Math.round(a.latency_ms) : "", "num"));
    tb.appendChild(tr);
  }
  $("audit-msg").textContent = `${auditRows.length} ${t("records")}`;
}

function exportAudit() {
  const cols = ["seq", "recorded", "route", "action", "workstation", "client", "hospitalId", "patient", "hpc", "outcome", "statusCode", "httpStatus", "requestId", "idempotencyKey", "latency_ms", "hash"];
  // A cell a spreadsheet would run as a formula (= + - @, or a tab / CR before one) gets a leading ' (OWASP CSV injection).
  const esc = (v) => {
    let s = v === undefined || v === null ? "" : String(mask(v));
    if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const csv = [cols.join(","), ...auditRows.map((a) => cols.map((c) => esc(a[c])).join(","))].join("\n");
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob(["\ufeff" + csv], { type: "text/csv;charset=utf-8" }));
  a.download = `nhigw-audit-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "")}.csv`;
  document.body.appendChild(a); a.click(); a.remove();
}

// ------------------------------------------------------------------ pages and timers

function route() {
  const page = (location.hash || "#overview").slice(1);
  for (const s of document.querySelectorAll(".page")) s.classList.toggle("active", s.id === `page-${page}`);
  for (const a of document.querySelectorAll(".tabs a")) a.classList.toggle("active", a.dataset.page === page);
  if (page === "dead") loadDead().catch(() => {});
  if (page === "audit") loadAudit().catch(() => {});
}

async function tick() {
  try {
    await loadWorkstations();
    await loadMetrics();
    if ((location.hash || "#overview") === "#dead") await loadDead();
    $("updated").textContent = new Date().toLocaleTimeString("zh-TW", { hour12: false });
    document.body.dataset.ticks = String(Number(document.body.dataset.ticks || 0) + 1);
    if (openMode && !sessionStorage.getItem("nhigw.opkey")) $("who").textContent = t("open-mode");
  } catch (e) { /* 401 shows the login; network errors: next tick */ }
}

window.addEventListener("DOMContentLoaded", async () => {
  applyLang();
  $("lang").addEventListener("click", () => { LANG = LANG === "en" ? "zh" : "en"; localStorage.setItem("nhigw.lang", LANG); applyLang(); tick(); route(); });
  $("btn-login").addEventListener("click", async () => {
    sessionStorage.setItem("nhigw.opkey", $("login-key").value.trim());
    $("login-key").value = "";
    try { const r = await call("GET", EP.workstations); if (r.ok) { showLogin(false); $("btn-logout").hidden = false; $("who").textContent = "operator"; tick(); } }
    catch (e) { $("login-err").textContent = t("loginfail"); }
  });
  $("btn-logout").addEventListener("click", () => { sessionStorage.removeItem("nhigw.opkey"); location.reload(); });
  $("audit-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadAudit().catch(() => {}); });
  $("btn-export").addEventListener("click", exportAudit);
  window.addEventListener("hashchange", route);
  await discover();
  if (sessionStorage.getItem("nhigw.opkey")) { $("btn-logout").hidden = false; $("who").textContent = "operator"; }
  route();
  await tick();
  setInterval(tick, SAMPLE_S * 1000);
  setInterval(() => { if (!$("page-overview").classList.contains("active")) return; loadWorkstations().catch(() => {}); }, 1000);
  document.body.dataset.ready = "1";
});
