/* Gateway ops dashboard. Reads the gateway's own APIs with the operator's API key (kept in this tab's
   sessionStorage only): /api/ops/me (who am I, what may I do), /api/workstations, /metrics (tiles),
   /api/ops/history (the chart and the per-route table), /api/ops/requests/search (request browser),
   /api/ops/dead-letters (list, history, actions), /api/audit, /api/admin/*. It shows only what the
   key may do; the gateway refuses the rest anyway. Traditional Chinese first; English on the toggle. */
"use strict";

// Static text: Chinese in the HTML, English here (by data-i18n key).
const EN = {
  "title": "Gateway operations", "nav.overview": "Overview", "nav.requests": "Requests", "nav.dead": "Dead letters", "nav.audit": "Audit trail", "nav.admin": "Clients", "logout": "Log out",
  "login.title": "Operator login", "login.help": "Enter an operator API key (made by nhigw gateway add-client --role viewer|operator|admin). It is kept in this tab only.", "login.go": "Log in",
  "t.online": "Workstations online", "t.sessions": "Device sessions", "t.queue": "Queue depth", "t.oldest": "Oldest pending", "t.retries": "Upstream retries", "t.dead": "Dead letters", "t.breaker": "Breaker",
  "ws.title": "Workstations", "ws.id": "Workstation", "ws.online": "Online", "ws.reader": "Reader", "ws.version": "Agent version", "ws.seen": "Last seen", "ws.cert": "HTTPS certificate ends",
  "chart.title": "Business requests: latency and error rate", "chart.help": "One point a minute, kept by the gateway (shared by its replicas through Redis): the last hours as soon as the page opens.",
  "chart.lat": "mean latency (ms)", "chart.err": "error rate (%)", "h.1": "last hour", "h.3": "last 3 hours", "h.6": "last 6 hours",
  "routes.title": "Per route", "routes.count": "Requests", "routes.errors": "Errors", "routes.rate": "Error rate",
  "req.title": "Request browser", "req.help": "By patient: type the full national ID; the gateway matches it through the keyed hash kept with each audit record. This page neither keeps nor shows the full number.",
  "req.patient": "Patient national ID", "req.id": "Request ID",
  "dead.title": "Dead letters", "dead.help": "Requests that failed after several deliveries. Retry puts one back on the queue; discard drops it and a waiting HIS gets a clear error. A write that may have reached the NHI cloud is never sent again by a retry or a bulk retry: check first, then \"resend anyway\" (recorded).",
  "dead.route": "Route", "dead.tries": "Deliveries", "dead.at": "Time", "dead.state": "State", "bulk.max": "Bulk retry, at most", "bulk.go": "Bulk retry",
  "detail.title": "Dead letter", "detail.history": "Every delivery and upstream attempt",
  "h.event": "Event", "h.replica": "Replica", "h.delivery": "Delivery", "h.code": "Code", "h.attempts": "Upstream attempts (the cloud's answer)", "h.phases": "Phases (Server-Timing, ms)", "h.by": "Operator", "h.detail": "Detail",
  "a.retry": "Retry", "a.discard": "Discard",
  "resend.title": "Resend anyway (it could run twice: check first)", "resend.check": "I checked with the query above that this write did not land", "resend.note": "What I checked (kept in the audit record)", "resend.go": "Resend anyway",
  "audit.title": "Audit trail", "audit.since": "From", "audit.until": "To", "audit.outcome": "Outcome", "audit.all": "all", "audit.ok": "success", "audit.fail": "failure",
  "audit.search": "Search", "audit.export": "Export CSV", "audit.client": "Client", "audit.patient": "Patient (masked)", "audit.attempts": "Attempts",
  "adm.title": "HIS clients and operator keys", "adm.name": "Name", "adm.role": "Role", "adm.hosp": "Hospital", "adm.ws": "Workstations", "adm.all": "all hospitals", "adm.his": "HIS client", "adm.add": "Add",
  "enrol.title": "Workstation enrolment token (one-time)", "enrol.ttl": "Valid for (s)", "enrol.go": "Issue token",
};
// Text the script writes: [Chinese, English].
const D = {
  "online": ["線上", "online"], "offline": ["離線", "offline"], "retry": ["重試", "Retry"], "discard": ["捨棄", "Discard"], "resend": ["確認後重送", "Resend…"], "details": ["明細", "Details"],
  "empty": ["目前沒有死信。", "No dead letters."], "closed": ["關閉 (正常)", "closed"], "open": ["開啟 (暫停呼叫)", "open"], "half": ["半開 (試探)", "half-open"],
  "nometrics": ["閘道尚未提供 /metrics。", "The gateway serves no /metrics."], "loginfail": ["金鑰無效。", "Unknown key."],
  "records": ["筆", "records"], "retried": ["已重新排入佇列", "re-queued"], "discarded": ["已捨棄", "discarded"], "resent": ["已重送 (已記錄)", "resent (recorded)"],
  "confirm.discard": ["確定捨棄這筆請求？", "Discard this request?"], "ago": ["秒前", "s ago"], "open-mode": ["本機開放模式", "open on loopback"], "days": ["天", "d"], "ca": ["CA", "CA"],
  "maybe": ["可能已送達", "may have landed"], "never": ["未送出", "never sent"], "unreadable": ["無法讀取", "unreadable"],
  "bulk.done": ["已重試 {n} 筆 (上限 {max})", "retried {n} (bound {max})"], "bulk.decide": ["；{n} 筆可能已送達的寫入須個別查證後重送", "; {n} write(s) that may have landed need their own decision"],
  "bulk.unreadable": ["；{n} 筆無法讀取", "; {n} unreadable"], "scanned": ["已掃描 {n} 筆稽核紀錄", "{n} audit records scanned"], "more": ["，尚有更多：請縮小時間範圍", "; more: narrow the time range"],
  "asked": ["查詢病患 {id} 的紀錄", "records of patient {id}"], "nopts": ["此時段沒有業務請求。", "No business requests in this window."],
  "hist.total": ["{n} 筆請求，{m} 分鐘有流量", "{n} requests over {m} minutes with traffic"],
  "all-hosp": ["所有機構", "all hospitals"], "not-ops": ["此金鑰不是維運金鑰 (HIS 用戶端)：儀表板只供 viewer / operator / admin。", "This key is an HIS client's, not an operator's: the dashboard is for viewer / operator / admin keys."],
  "no-scope": ["此維運金鑰沒有指定醫事機構 (hospitalId 或 allHospitals)，閘道拒絕所有維運操作。", "This operator key has no hospital (hospitalId or allHospitals): the gateway refuses every ops action."],
  "key.once": ["新金鑰 (只顯示這一次，請妥善保存)：", "The new key (shown once only, keep it safe): "], "token.once": ["一次性註冊權杖：", "One-time enrolment token: "],
  "remove": ["移除", "Remove"], "removed": ["已移除", "removed"], "confirm.remove": ["確定移除此用戶端？", "Remove this client?"],
  "event.failed": ["送達失敗", "delivery failed"], "event.redelivered": ["重新送達", "redelivered"], "event.answered": ["已回覆", "answered"], "event.sent": ["已送至健保署", "sent to the NHI cloud"],
  "event.dead-lettered": ["移入死信", "dead-lettered"], "event.retry": ["操作人員重試", "operator retry"], "event.resend": ["操作人員確認後重送", "operator resend (decided)"],
  "event.discard": ["操作人員捨棄", "operator discard"], "event.decision": ["操作人員決定", "operator decision"],
  "f.requestId": ["請求 ID", "Request ID"], "f.idempotencyKey": ["Idempotency-Key", "Idempotency-Key"], "f.path": ["路由", "Route"], "f.workstation": ["工作站", "Workstation"],
  "f.client": ["用戶端", "Client"], "f.hospitalId": ["醫事機構", "Hospital"], "f.write": ["寫入", "Write"], "f.enqueuedAt": ["排入佇列", "Enqueued"], "f.rerunOf": ["重跑自", "Re-run of"],
  "f.deliveries": ["送達次數", "Deliveries"], "yes": ["是", "yes"], "no": ["否", "no"],
};
let LANG = localStorage.getItem("nhigw.lang") || "zh";
// Seconds between refreshes of the tiles, the chart and the lists; ?sample_s= overrides it.
const SAMPLE_S = Math.max(0.2, Number(new URLSearchParams(location.search).get("sample_s")) || 3);
const t = (k, vars) => {
  let s = D[k] ? D[k][LANG === "en" ? 1 : 0] : k;
  for (const [n, v] of Object.entries(vars || {})) s = s.replace(`{${n}}`, String(v));
  return s;
};
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

let ME = null; // GET /api/ops/me: name, role, hospitalId, allHospitals, open, may{action: bool}

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

// A refusal as the gateway words it: its 6.0 code and message in the page's language, and the detail.
function errText(r) {
  const d = r.data;
  if (!d || typeof d !== "object") return `HTTP ${r.status}`;
  const msg = LANG === "en" ? d.messageEn || d.message : d.message || d.messageEn;
  return [d.statusCode, msg, d.detail].filter((x) => x !== undefined && x !== null && x !== "").join(" · ");
}

function showLogin(on) { $("login").hidden = !on; }

const may = (action) => !!(ME && ME.may && ME.may[action]);
const acting = () => may("dead-letters");

// What this key may see and do decides the tabs and buttons (the gateway refuses the rest regardless).
function applyRole() {
  document.body.dataset.role = ME ? ME.role || "his" : "";
  document.body.classList.toggle("can-act", acting());
  for (const a of document.querySelectorAll(".tabs a")) a.hidden = !may(a.dataset.may);
  // The resend form is shown by a dead letter's detail when it applies; a key that may not act never sees it.
  for (const el of document.querySelectorAll(".acting")) {
    if (el.id !== "resend-form") el.hidden = !acting();
    else if (!acting()) el.hidden = true;
  }
  const note = $("role-note");
  if (ME && !ME.role) { note.textContent = t("not-ops"); note.hidden = false; }
  else if (ME && !ME.allHospitals && !ME.hospitalId) { note.textContent = t("no-scope"); note.hidden = false; }
  else note.hidden = true;
  if (!ME) { $("who").textContent = ""; return; }
  const scope = ME.allHospitals ? t("all-hosp") : ME.hospitalId || "—";
  $("who").textContent = ME.open ? t("open-mode") : `${ME.name} · ${ME.role || "his"} · ${scope}`;
  $("who").dataset.hospital = ME.allHospitals ? "*" : ME.hospitalId || "";
}

async function loadMe() {
  const r = await call("GET", "/api/ops/me");
  if (!r.ok) return false;
  ME = r.data;
  showLogin(false);
  $("btn-logout").hidden = ME.open;
  applyRole();
  return true;
}

function firstArray(d, prefer) {
  if (Array.isArray(d)) return d;
  if (d && typeof d === "object") {
    for (const k of prefer) if (Array.isArray(d[k])) return d[k];
  }
  return [];
}

function td(text, cls) { const el = document.createElement("td"); el.textContent = text === undefined || text === null ? "" : String(text); if (cls) el.className = cls; return el; }
function button(label, cls, fn) { const b = document.createElement("button"); b.type = "button"; b.className = cls; b.textContent = label; b.addEventListener("click", fn); return b; }
const num = (v, digits = 0) => (v === undefined || v === null ? "—" : Number(v).toFixed(digits));

function fmtTime(v) {
  if (v === undefined || v === null || v === "") return "";
  const d = typeof v === "number" ? new Date(v < 1e12 ? v * 1000 : v) : new Date(v);
  return isNaN(d) ? String(v) : d.toLocaleString(LANG === "en" ? "en-GB" : "zh-TW", { hour12: false });
}

// Defence in depth: the gateway returns masked IDs only; a full one would be masked here too.
const ID_RE = /\b([A-Z][12489]\d{8})\b/g;
const mask = (s) => (typeof s === "string" ? s.replace(ID_RE, (m) => `${m.slice(0, 3)}*****${m.slice(-2)}`) : s);
const localIso = (v) => (v ? new Date(v).toISOString() : undefined); // datetime-local (the operator's zone) as UTC

// ------------------------------------------------------------------ overview: tiles, workstations

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

async function loadWorkstations() {
  const r = await call("GET", "/api/workstations");
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

// Prometheus text format -> {name: [{labels, value}]}
function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const p of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
    (out[m[1]] = out[m[1]] || []).push({ labels, value: Number(m[4]) });
  }
  return out;
}
const sum = (M, name, pred) => (M[name] || []).filter((s) => !pred || pred(s.labels)).reduce((a, s) => a + s.value, 0);
const has = (M, name) => M[name] !== undefined;

async function loadMetrics() {
  const r = await call("GET", "/metrics");
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
  if (ME && ME.allHospitals) $("m-dead").textContent = dead === null ? "—" : String(dead);
  else {
    // /metrics counts every hospital's dead letters: a hospital's key sees the count of its own.
    const r = await call("GET", "/api/ops/dead-letters");
    $("m-dead").textContent = r.ok ? String(firstArray(r.data, ["deadLetters"]).length) : "—";
  }
  const sessions = g("nhigw_gateway_device_sessions");
  $("m-sessions").textContent = sessions === null ? "—" : String(sessions);
  const br = g("nhigw_gateway_breaker_state");
  const bEl = $("m-breaker");
  bEl.textContent = br === null ? "—" : [t("closed"), t("open"), t("half")][br] || String(br);
  bEl.dataset.state = br === null ? "" : String(br);
  $("metrics-note").textContent = "";
}

// ------------------------------------------------------------------ overview: history chart, per-route table

let HIST = null;
async function loadHistory() {
  const hours = $("hist-hours").value;
  const r = await call("GET", `/api/ops/history?hours=${encodeURIComponent(hours)}`);
  if (!r.ok) { $("hist-note").textContent = errText(r); return; }
  HIST = r.data;
  drawChart();
  const tb = $("route-table").querySelector("tbody");
  tb.textContent = "";
  for (const row of HIST.routes || []) {
    const tr = document.createElement("tr");
    tr.dataset.route = row.route;
    tr.append(td(row.route, "mono"), td(row.count, "num"), td(row.errors, "num"), td(`${(100 * row.errorRate).toFixed(1)}%`, row.errors ? "num bad" : "num"), td(num(row.p50Ms, 1), "num"), td(num(row.p99Ms, 1), "num"));
    tb.appendChild(tr);
  }
}

function drawChart() {
  const svg = $("chart"), W = 800, H = 220, P = 34;
  const pts = (HIST && HIST.points) || [];
  const hours = Number((HIST && HIST.hours) || 3);
  const end = Math.floor(Date.now() / 60000) * 60000, start = end - hours * 3600000 + 60000;
  const lats = pts.flatMap((p) => [p.meanMs, p.p99Ms]).filter((v) => v !== null && v !== undefined);
  const maxLat = Math.max(10, ...lats) * 1.1;
  const x = (at) => P + ((W - 2 * P) * Math.max(0, at - start)) / Math.max(end - start, 1);
  const yL = (v) => H - P - ((H - 2 * P) * v) / maxLat;
  const yE = (v) => H - P - ((H - 2 * P) * v) / 100;
  const line = (f, y) => pts.map((p) => { const v = f(p); return v === null || v === undefined ? null : `${x(p.at).toFixed(1)},${y(v).toFixed(1)}`; }).filter(Boolean).join(" ");
  const dots = (f, y, cls) => pts.map((p) => { const v = f(p); return v === null || v === undefined ? "" : `<circle class="${cls}" cx="${x(p.at).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5"/>`; }).join("");
  const hhmm = (ms) => new Date(ms).toLocaleTimeString(LANG === "en" ? "en-GB" : "zh-TW", { hour12: false, hour: "2-digit", minute: "2-digit" });
  let ticks = "";
  for (let i = 0; i <= 4; i++) { const at = start + ((end - start) * i) / 4; ticks += `<text x="${x(at).toFixed(1)}" y="${H - P + 14}" class="tick" text-anchor="middle">${hhmm(at)}</text>`; }
  const err = (p) => (p.count ? (100 * p.errors) / p.count : null);
  svg.innerHTML = `
    <line x1="${P}" y1="${H - P}" x2="${W - P}" y2="${H - P}" class="axis"/>
    <line x1="${P}" y1="${P}" x2="${P}" y2="${H - P}" class="axis"/>
    <line x1="${W - P}" y1="${P}" x2="${W - P}" y2="${H - P}" class="axis"/>
    <text x="${P - 4}" y="${P + 4}" class="tick" text-anchor="end">${maxLat.toFixed(0)}</text>
    <text x="${P - 4}" y="${H - P}" class="tick" text-anchor="end">0</text>
    <text x="${W - P + 4}" y="${P + 4}" class="tick">100%</text>
    <text x="${W - P + 4}" y="${H - P}" class="tick">0%</text>${ticks}
    <polyline class="p99" points="${line((p) => p.p99Ms, yL)}"/>
    <polyline class="lat" points="${line((p) => p.meanMs, yL)}"/>
    <polyline class="errr" points="${line(err, yE)}"/>
    ${dots((p) => p.meanMs, yL, "lat")}${dots(err, yE, "errr")}`;
  const total = pts.reduce((a, p) => a + p.count, 0);
  svg.dataset.points = String(pts.length);
  svg.dataset.requests = String(total);
  svg.dataset.errors = String(pts.reduce((a, p) => a + p.errors, 0));
  svg.dataset.first = pts.length ? String(pts[0].at) : "";
  $("hist-note").textContent = pts.length ? t("hist.total", { n: total, m: pts.length }) : t("nopts");
}

// ------------------------------------------------------------------ request browser

function fillRecordRow(tr, a) {
  tr.append(td(fmtTime(a.recorded)), td(a.route, "mono"), td(a.workstation || "—"), td(a.client), td(mask(a.patient) || "—", "mono"),
    td(mask(a.hpc) || "—", "mono"), td(a.outcome === 0 ? "✓" : `✗ ${a.outcome}`, a.outcome === 0 ? "ok" : "bad"), td(a.statusCode, "num"),
    td((a.attempts || []).length, "num"), td(a.latency_ms !== undefined ? Math.round(a.latency_ms) : "", "num"));
}

async function searchRequests() {
  const body = {};
  const patient = $("r-patient").value.trim().toUpperCase();
  // The typed ID goes to the gateway in a POST body only (never a URL), and leaves the page at once.
  $("r-patient").value = "";
  if (patient) body.patient = patient;
  for (const [k, id] of [["workstation", "r-ws"], ["route", "r-route"], ["outcome", "r-outcome"]]) if ($(id).value.trim()) body[k] = $(id).value.trim();
  if ($("r-since").value) body.since = localIso($("r-since").value);
  if ($("r-until").value) body.until = localIso($("r-until").value);
  const r = await call("POST", "/api/ops/requests/search", body);
  const masked = patient ? mask(patient.length === 10 ? patient : patient.slice(0, 3) + "*".repeat(Math.max(0, patient.length - 5)) + patient.slice(-2)) : "";
  $("req-asked").textContent = patient ? t("asked", { id: masked }) : "";
  const tb = $("req-table").querySelector("tbody");
  tb.textContent = "";
  if (!r.ok) { $("req-msg").textContent = errText(r); return; }
  for (const a of r.data.records || []) {
    const tr = document.createElement("tr");
    tr.dataset.requestId = a.requestId;
    fillRecordRow(tr, a);
    tr.append(td(a.requestId, "mono"));
    tb.appendChild(tr);
  }
  $("req-msg").textContent = `${(r.data.records || []).length} ${t("records")} · ${t("scanned", { n: r.data.scanned })}${r.data.more ? t("more") : ""}`;
}

// ------------------------------------------------------------------ dead letters

function deadState(d) {
  if (d.job && d.job.unreadable) return [t("unreadable"), "bad"];
  return d.mayHaveLanded ? [t("maybe"), "warn"] : [t("never"), ""];
}

async function loadDead() {
  const r = await call("GET", "/api/ops/dead-letters");
  if (!r.ok) { $("dead-msg").textContent = errText(r); return; }
  const list = firstArray(r.data, ["deadLetters"]);
  const tb = $("dead-table").querySelector("tbody");
  tb.textContent = "";
  for (const d of list) {
    const job = d.job || {};
    const tr = document.createElement("tr");
    tr.dataset.id = d.id;
    tr.dataset.maybe = d.mayHaveLanded ? "1" : "0";
    const act = document.createElement("td");
    act.className = "actions";
    act.appendChild(button(t("details"), "details", () => { location.hash = `#dead/${d.id}`; }));
    // Only the actions the gateway offers this key (none for a viewer; resend, not retry, for a write that may have landed).
    for (const a of d.actions || []) {
      if (a === "retry") act.appendChild(button(t("retry"), "retry", () => deadAction(d.id, "retry")));
      if (a === "resend") act.appendChild(button(t("resend"), "resend", () => { location.hash = `#dead/${d.id}`; }));
      if (a === "discard") act.appendChild(button(t("discard"), "discard", () => deadAction(d.id, "discard")));
    }
    const [state, cls] = deadState(d);
    tr.append(td(d.id, "mono"), td(job.path), td(job.workstation || "—"), td(d.deliveries, "num"), td(fmtTime(job.enqueuedAt)), td(state, cls), act);
    tb.appendChild(tr);
  }
  $("dead-msg").textContent = list.length ? `${list.length} ${t("records")}` : t("empty");
  $("dead-table").dataset.count = String(list.length);
}

async function deadAction(id, what, body) {
  if (what === "discard" && !window.confirm(t("confirm.discard"))) return;
  const path = `/api/ops/dead-letters/${encodeURIComponent(id)}`;
  const r = what === "discard" ? await call("DELETE", path) : await call("POST", `${path}/${what}`, body);
  const msg = r.ok ? `${id}: ${t({ retry: "retried", resend: "resent", discard: "discarded" }[what])}` : `${id}: ${errText(r)}`;
  for (const el of [$("dead-msg"), $("dd-msg")]) { el.textContent = msg; el.dataset.last = r.ok ? `${what}:${id}` : `refused:${id}`; }
  if (r.ok && location.hash === `#dead/${id}`) location.hash = "#dead";
  await loadDead();
  return r;
}

async function bulkRetry() {
  const body = { max: Number($("bulk-max").value) };
  if ($("bulk-route").value.trim()) body.route = $("bulk-route").value.trim();
  if ($("bulk-ws").value.trim()) body.workstation = $("bulk-ws").value.trim();
  const r = await call("POST", "/api/ops/dead-letters/bulk-retry", body);
  const el = $("bulk-msg");
  if (!r.ok) { el.textContent = errText(r); el.dataset.retried = ""; return; }
  const n = Object.keys(r.data.retried || {}).length, decide = (r.data.needDecision || []).length, bad = (r.data.unreadable || []).length;
  el.textContent = t("bulk.done", { n, max: body.max }) + (decide ? t("bulk.decide", { n: decide }) : "") + (bad ? t("bulk.unreadable", { n: bad }) : "");
  el.dataset.retried = String(n);
  el.dataset.needDecision = String(decide);
  await loadDead();
}

function phasesText(ph) { return Object.entries(ph || {}).map(([k, v]) => `${k} ${Number(v).toFixed(1)}`).join(" · "); }
function attemptsText(at) { return (at || []).map((a) => `#${a.n} ${a.outcome} ${Math.round(a.latency_ms)} ms`).join("; "); }

let DETAIL = null;
async function loadDetail(id) {
  const box = $("dead-detail");
  const r = await call("GET", `/api/ops/dead-letters/${encodeURIComponent(id)}`);
  if (currentPage().arg !== id) return; // the operator moved on meanwhile
  box.hidden = false;
  $("dd-id").textContent = id;
  box.dataset.id = id;
  const sb = $("dd-summary").querySelector("tbody"), hb = $("dd-history").querySelector("tbody");
  sb.textContent = ""; hb.textContent = "";
  if (!r.ok) { DETAIL = null; $("dd-msg").textContent = errText(r); $("resend-form").hidden = true; for (const b of ["dd-retry", "dd-discard"]) $(b).hidden = true; return; }
  const d = (DETAIL = r.data), job = d.job || {};
  const kv = [["f.requestId", job.requestId], ["f.idempotencyKey", job.idempotencyKey], ["f.path", job.path], ["f.workstation", job.workstation], ["f.client", job.client],
    ["f.hospitalId", job.hospitalId], ["f.write", job.write ? t("yes") : t("no")], ["f.enqueuedAt", fmtTime(job.enqueuedAt)], ["f.deliveries", d.deliveries], ["f.rerunOf", job.rerunOf]];
  for (const [k, v] of kv) {
    if (v === undefined || v === null || v === "") continue;
    const tr = document.createElement("tr");
    const th = document.createElement("th"); th.textContent = t(k);
    tr.append(th, td(v, "mono"));
    sb.appendChild(tr);
  }
  $("dd-reconcile").hidden = !d.mayHaveLanded;
  $("dd-reconcile").textContent = d.mayHaveLanded ? `${t("maybe")}: ${d.reconcile || ""}` : "";
  for (const h of d.history || []) {
    const tr = document.createElement("tr");
    tr.dataset.event = h.event;
    tr.dataset.at = h.at || "";
    // To the millisecond: a delivery, its failure and the reclaim that dead-letters it are often within one second.
    const ms = h.at && !isNaN(new Date(h.at)) ? `.${String(new Date(h.at).getMilliseconds()).padStart(3, "0")}` : "";
    tr.append(td(fmtTime(h.at) + ms), td(t(`event.${h.event}`), h.event === "failed" || h.event === "dead-lettered" ? "bad" : ""), td(h.instance, "mono"), td(h.delivery, "num"),
      td(h.statusCode, "num"), td(attemptsText(h.attempts), "mono"), td(phasesText(h.phases), "mono"), td(h.client || ""), td(mask(h.detail) || ""));
    hb.appendChild(tr);
  }
  $("dd-history").dataset.count = String((d.history || []).length);
  const acts = d.actions || [];
  $("dd-retry").hidden = !acts.includes("retry");
  $("dd-discard").hidden = !acts.includes("discard");
  $("resend-form").hidden = !acts.includes("resend");
  $("resend-ok").checked = false;
  $("btn-resend").disabled = true;
  $("resend-note").value = "";
  $("dd-msg").textContent = "";
  box.scrollIntoView({ block: "start" });
}

// ------------------------------------------------------------------ audit

let auditRows = [];

function auditFilter() {
  const since = $("f-since").value ? new Date($("f-since").value) : null;
  const until = $("f-until").value ? new Date($("f-until").value) : null;
  return { since, until, ws: $("f-ws").value.trim(), route: $("f-route").value.trim(), outcome: $("f-outcome").value };
}

async function loadAudit() {
  const f = auditFilter();
  const qs = new URLSearchParams();
  if (f.since) qs.set("since", f.since.toISOString());
  if (f.until) qs.set("until", f.until.toISOString());
  qs.set("order", "desc"); // the newest page (the gateway pages its audit: 1,000 records at most per call)
  const r = await call("GET", `/api/audit?${qs}`);
  if (!r.ok) { $("audit-msg").textContent = errText(r); return; }
  // The audit API pages by time; workstation, route and outcome are filtered here (the request browser filters on the gateway).
  auditRows = firstArray(r.data, ["records"]).slice().reverse().filter((a) => {
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
    tr.append(td(a.seq, "num"));
    fillRecordRow(tr, a);
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

// ------------------------------------------------------------------ admin: clients and enrolment tokens

async function loadClients() {
  const r = await call("GET", "/api/admin/clients");
  const tb = $("clients-table").querySelector("tbody");
  tb.textContent = "";
  if (!r.ok) { $("adm-msg").textContent = errText(r); return; }
  for (const c of r.data.clients || []) {
    const tr = document.createElement("tr");
    tr.dataset.name = c.name;
    const act = document.createElement("td");
    act.appendChild(button(t("remove"), "discard", async () => {
      if (!window.confirm(t("confirm.remove"))) return;
      const rr = await call("DELETE", `/api/admin/clients/${encodeURIComponent(c.name)}`);
      $("adm-msg").textContent = rr.ok ? `${c.name}: ${t("removed")}` : errText(rr);
      loadClients();
    }));
    tr.append(td(c.name, "mono"), td(c.role || t("adm.his")), td(c.allHospitals ? t("all-hosp") : c.hospitalId || "—"), td((c.workstations || []).join(", "), "mono"), act);
    tb.appendChild(tr);
  }
  $("adm-msg").textContent = "";
}

async function addClient() {
  const body = { name: $("c-name").value.trim(), workstations: $("c-ws").value.split(",").map((s) => s.trim()).filter(Boolean), allHospitals: $("c-all").checked };
  if ($("c-hosp").value.trim()) body.hospitalId = $("c-hosp").value.trim();
  if ($("c-role").value) body.role = $("c-role").value;
  const r = await call("POST", "/api/admin/clients", body);
  const box = $("c-key");
  box.hidden = false;
  box.textContent = r.ok ? t("key.once") + r.data.key : errText(r);
  if (r.ok) $("c-name").value = "";
  loadClients();
}

async function issueToken() {
  const r = await call("POST", "/api/admin/enrol-tokens", { workstation: $("e-ws").value.trim(), ttl_s: Number($("e-ttl").value) || 600 });
  const box = $("e-token");
  box.hidden = false;
  box.textContent = r.ok ? `${t("token.once")}${r.data.token}` : errText(r);
}

// ------------------------------------------------------------------ pages and timers

function currentPage() {
  const [page, arg] = (location.hash || "#overview").slice(1).split("/");
  return { page: page || "overview", arg };
}

function route() {
  let { page, arg } = currentPage();
  const tab = document.querySelector(`.tabs a[data-page="${page}"]`);
  if (ME && (!tab || tab.hidden)) {
    const first = [...document.querySelectorAll(".tabs a")].find((a) => !a.hidden);
    page = first ? first.dataset.page : "";
    arg = undefined;
  }
  for (const s of document.querySelectorAll(".page")) s.classList.toggle("active", s.id === `page-${page}`);
  for (const a of document.querySelectorAll(".tabs a")) a.classList.toggle("active", a.dataset.page === page);
  if (!ME) return;
  if (page === "overview") loadHistory().catch(() => {});
  if (page === "dead") {
    loadDead().catch(() => {});
    if (arg) loadDetail(arg).catch(() => {});
    else { $("dead-detail").hidden = true; $("dead-detail").dataset.id = ""; DETAIL = null; }
  }
  if (page === "audit") loadAudit().catch(() => {});
  if (page === "admin") loadClients().catch(() => {});
}

async function tick() {
  try {
    if (!ME && !(await loadMe())) return;
    const { page } = currentPage();
    if (page === "overview" && may("dashboard")) {
      await loadWorkstations();
      await loadMetrics();
      await loadHistory();
    }
    if (page === "dead" && may("dashboard")) await loadDead();
    $("updated").textContent = new Date().toLocaleTimeString("zh-TW", { hour12: false });
    document.body.dataset.ticks = String(Number(document.body.dataset.ticks || 0) + 1);
  } catch (e) { /* 401 shows the login; network errors: next tick */ }
}

window.addEventListener("DOMContentLoaded", async () => {
  applyLang();
  $("lang").addEventListener("click", () => { LANG = LANG === "en" ? "zh" : "en"; localStorage.setItem("nhigw.lang", LANG); applyLang(); applyRole(); tick(); route(); });
  $("btn-login").addEventListener("click", async () => {
    sessionStorage.setItem("nhigw.opkey", $("login-key").value.trim());
    $("login-key").value = "";
    $("login-err").textContent = "";
    try { if (await loadMe()) { route(); tick(); } } catch (e) { $("login-err").textContent = t("loginfail"); }
  });
  $("btn-logout").addEventListener("click", () => { sessionStorage.removeItem("nhigw.opkey"); location.reload(); });
  $("audit-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadAudit().catch(() => {}); });
  $("req-form").addEventListener("submit", (ev) => { ev.preventDefault(); searchRequests().catch(() => {}); });
  $("bulk-form").addEventListener("submit", (ev) => { ev.preventDefault(); bulkRetry().catch(() => {}); });
  $("dd-retry").addEventListener("click", () => DETAIL && deadAction(DETAIL.id, "retry"));
  $("dd-discard").addEventListener("click", () => DETAIL && deadAction(DETAIL.id, "discard"));
  $("resend-ok").addEventListener("change", () => { $("btn-resend").disabled = !$("resend-ok").checked; });
  $("resend-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (DETAIL && $("resend-ok").checked) deadAction(DETAIL.id, "resend", { reconciled: true, note: $("resend-note").value.trim() }).catch(() => {});
  });
  $("client-form").addEventListener("submit", (ev) => { ev.preventDefault(); addClient().catch(() => {}); });
  $("enrol-form").addEventListener("submit", (ev) => { ev.preventDefault(); issueToken().catch(() => {}); });
  $("hist-hours").addEventListener("change", () => loadHistory().catch(() => {}));
  $("btn-export").addEventListener("click", exportAudit);
  window.addEventListener("hashchange", route);
  try { await loadMe(); } catch (e) { /* 401: the login shows */ }
  route();
  await tick();
  setInterval(tick, SAMPLE_S * 1000);
  setInterval(() => { if (currentPage().page === "overview" && may("dashboard")) loadWorkstations().catch(() => {}); }, 1000);
  document.body.dataset.ready = "1";
});
