/* The agent console: every action calls the 6.0 component API an HIS calls (same origin).
   Live status comes from the SSE stream GET /api/common/v1/Events (falls back to polling
   /api/common/v1/Status while the stream is down). */
"use strict";

const PATHS = {
  status: "/api/common/v1/Status", name: "/api/common/v1/Name", version: "/api/common/v1/Version",
  initial: "/api/common/v1/Initial", finalize: "/api/common/v1/Finalize", time: "/api/common/v1/ServerDateTime",
  record: "/api/common/v1/Record", events: "/api/common/v1/Events",
  samVerify: "/api/sam/v1/Verification", samLogout: "/api/sam/v1/Logout", samBasic: "/api/sam/v1/Basic", samSig: "/api/sam/v1/Signature",
  hpcVerify: "/api/hpc/v1/Verification/Hpc", mobileHca: "/api/hpc/v1/Verification/MobileHca", hpcBasic: "/api/hpc/v1/Basic",
  hpcSig: "/api/hpc/v1/Signature", hpcLogout: "/api/hpc/v1/Logout",
  vhc: "/api/hc/v1/Verification/VirtualHc", hcBasic: "/api/hc/v1/Basic", hcSig: "/api/hc/v1/Signature/Hc",
  hpchcSig: "/api/hc/v1/Signature/HpcHc", hcPin: "/api/hc/v1/Pin", hcLogout: "/api/hc/v1/Logout",
  // Settings; re-read from the OpenAPI document when it lists them elsewhere.
  settings: "/api/common/v1/Settings", readerSetting: "/api/common/v1/Settings/Reader", corsSetting: "/api/common/v1/Settings/Cors",
  cloudSam: "/api/common/v1/Settings/CloudSam",
};
const OPENAPI_URL = "/api/swagger/v1/swagger.json";  // the agent's own document, where the seed says 6.0 serves it
const HIDDEN_IN_RECORD = new Set(["GET /api/common/v1/Record"]);  // the console's own refreshes

let STATE = null;            // last AgentStatus
let cloudSamIds = new Set(); // imported cloud SAMs, to label the device as the seed does (雲端安全模組)
let localRecord = [];        // used while the agent serves no /Record
let recordServed = true;
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ API calls

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  let status = 0, data = null;
  try {
    const r = await fetch(path, init);
    status = r.status;
    const text = await r.text();
    try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { statusCode: -1, message: text.slice(0, 200) }; }
  } catch (e) {
    data = { statusCode: -1, message: String(e) };
  }
  const code = data && typeof data.statusCode === "number" ? data.statusCode : (status >= 400 ? -1 : 0);
  localRecord.unshift({ function: `${method} ${path}`, result: String(code).padStart(4, "0") });
  localRecord = localRecord.slice(0, 50);
  refreshRecord();
  return { status, ok: status >= 200 && status < 300 && code === 0, data };
}

function show(id, res) {
  const el = $(id);
  if (!el) return;
  el.classList.toggle("err", !res.ok);
  let d = res.data || {};
  if (!res.ok && d.statusCode === 9405) d = Object.assign({}, d, { note: t("waiting") });
  el.textContent = JSON.stringify(d, null, 2);
}

function fill(dlId, data) {
  for (const dd of document.querySelectorAll(`#${dlId} dd[data-k]`)) {
    const v = data ? data[dd.dataset.k] : undefined;
    dd.textContent = v === undefined || v === null ? "" : String(v);
  }
}

// ------------------------------------------------------------------ status

function stateName(kind, n) {
  if (n === 0) return t("s.none");
  if (kind === "sam") return n >= 2 ? t("s.verified") : t("s.present");
  if (kind === "hpc") return n >= 3 ? t("s.pin") : n === 2 ? t("s.ready") : t("s.present");
  return n >= 2 ? t("s.verified") : t("s.present");
}

function yesNo(v) { return v === true ? t("yes") : v === false ? t("no") : t("unknown"); }

function render(st) {
  STATE = st;
  const sam = st.sam.status, hpc = st.hpc.status, hc = st.hc.status;
  const dev = $("sb-device");
  dev.dataset.state = st.initialized ? "1" : "0";
  dev.textContent = st.initialized ? t("connected") : t("disconnected");
  const pill = (id, n, label) => { const el = $(id); el.dataset.state = String(n); el.textContent = `${label} ${n}`; };
  pill("sb-sam", sam, sam ? (cloudSamIds.has(st.device) ? t("sam.cloud") : t("sam.n")) : t("sam.0"));
  pill("sb-hpc", hpc, hpc ? t("hpc.n") : t("hpc.0"));
  pill("sb-hc", hc, hc ? (st.hc.virtual ? t("hc.v") : t("hc.n")) : t("hc.0"));
  $("st-device").textContent = st.device || "—";
  $("st-reader").textContent = st.reader || "—";
  $("st-sam").textContent = `${stateName("sam", sam)} (${sam})`;
  $("st-hpc").textContent = `${stateName("hpc", hpc)} (${hpc})`;
  $("st-hc").textContent = `${stateName("hc", hc)} (${hc})`;
  $("st-pinset").textContent = yesNo(st.hc.pinSet);
  $("st-pinok").textContent = yesNo(st.hc.pinVerified);
  $("hc-pinset").textContent = yesNo(st.hc.pinSet);
  for (const cell of document.querySelectorAll("[data-need]")) {
    const [kind, n] = cell.dataset.need.split(":");
    const need = Number(n);
    let ok;
    if (kind === "init") ok = need ? st.initialized : !st.initialized;
    else ok = st.initialized && st[kind].status >= need;
    cell.classList.toggle("ok", ok);
    cell.classList.toggle("bad", !ok);
  }
}

let pollTimer = null;
function startEvents() {
  const live = $("sb-live");
  const es = new EventSource(PATHS.events);
  es.addEventListener("status", (ev) => {
    live.classList.add("on");
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    try { render(JSON.parse(ev.data).status); } catch (e) { /* keep the last state */ }
  });
  es.onerror = () => {
    live.classList.remove("on");
    if (!pollTimer) pollTimer = setInterval(pollStatus, 1000);
  };
}

async function pollStatus() {
  try {
    const r = await fetch(PATHS.status);
    if (r.ok) render((await r.json()).status);
  } catch (e) { /* agent down: keep trying */ }
}

// ------------------------------------------------------------------ API call record

async function refreshRecord() {
  let rows = localRecord;
  if (recordServed) {
    try {
      const r = await fetch(PATHS.record);
      if (r.status === 404 || r.status === 405) recordServed = false;
      else if (r.ok) {
        const d = await r.json();
        const list = Array.isArray(d.records) ? d.records : Array.isArray(d) ? d : null;
        if (list) rows = list;
      }
    } catch (e) { /* show the local record */ }
  }
  const tb = $("rec-table").querySelector("tbody");
  tb.textContent = "";
  for (const rec of rows.filter((x) => !HIDDEN_IN_RECORD.has(x.function)).slice(0, 30)) {
    const tr = document.createElement("tr");
    const res = rec.result !== undefined ? rec.result : rec.statusCode;
    for (const v of [rec.function || rec.name || "", String(res).padStart(4, "0")]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    if (String(res).replace(/^0+/, "") !== "") tr.classList.add("err");
    tb.appendChild(tr);
  }
}

// ------------------------------------------------------------------ pages

function route() {
  const page = (location.hash || "#common").slice(1);
  for (const s of document.querySelectorAll(".page")) s.classList.toggle("active", s.id === `page-${page}`);
  for (const a of document.querySelectorAll(".sidebar a")) a.classList.toggle("active", a.dataset.page === page);
  if (page === "swagger") loadSwagger();
  if (page === "settings") loadSettings();
  if (page === "about") loadVersion("kv-about");
}

async function loadNames() {
  const r = await api("GET", PATHS.name);
  const names = (r.data && r.data.names) || [];
  for (const [selId, filter] of [["device-list", () => true], ["reader-list", (n) => !/^COM\d+$/i.test(n) && !/^\d+$/.test(n)]]) {
    const sel = $(selId);
    const keep = sel.value;
    while (sel.options.length > 1) sel.remove(1);
    for (const n of names.filter(filter)) sel.add(new Option(n, n));
    sel.value = keep;
  }
}

async function loadVersion(dl) {
  const r = await api("GET", PATHS.version);
  fill(dl, r.data);
}

let openapi = null;
async function loadOpenApi() {
  if (openapi) return openapi;
  try {
    const r = await fetch(OPENAPI_URL);
    if (r.ok) openapi = await r.json();
  } catch (e) { /* no document: the Swagger page stays empty */ }
  if (openapi) discoverPaths(openapi);
  return openapi;
}

function discoverPaths(doc) {
  for (const p of Object.keys(doc.paths || {})) {
    if (/settings/i.test(p) && /reader/i.test(p)) PATHS.readerSetting = p;
    else if (/settings/i.test(p) && /cors/i.test(p)) PATHS.corsSetting = p;
    else if (/cloud.?sam/i.test(p) && !/\{/.test(p)) PATHS.cloudSam = p;
    else if (/settings\/?$/i.test(p)) PATHS.settings = p;
  }
}

function schemaName(s) {
  if (!s) return "";
  if (s.$ref) return s.$ref.split("/").pop();
  if (s.anyOf) return schemaName(s.anyOf[0]);  // the answer, or a 6.0 refusal (ErrorBody) with HTTP 200 too
  return s.title || s.type || "";
}

async function loadSwagger() {
  const doc = await loadOpenApi();
  const tb = $("sw-table").querySelector("tbody");
  if (!doc) { tb.textContent = ""; return; }
  $("sw-title").textContent = `${doc.info ? doc.info.title : ""} ${doc.info ? doc.info.version : ""} · OpenAPI ${doc.openapi || doc.swagger || ""}`;
  tb.textContent = "";
  const rows = [];
  for (const [path, ops] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(ops)) {
      if (!["get", "post", "put", "delete", "patch"].includes(method)) continue;
      rows.push({ path, method, op });
    }
  }
  rows.sort((a, b) => a.path.localeCompare(b.path));
  for (const { path, method, op } of rows) {
    const tr = document.createElement("tr");
    tr.className = "sw-row";
    const m = document.createElement("td"); m.innerHTML = `<span class="method m-${method}"></span>`; m.firstChild.textContent = method.toUpperCase();
    const p = document.createElement("td"); p.className = "mono"; p.textContent = path;
    const s = document.createElement("td"); s.textContent = op.summary || op.description || "";
    const req = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
    const ok = op.responses && (op.responses["200"] || op.responses["201"]);
    const resp = ok && ok.content && ok.content["application/json"];
    const b = document.createElement("td"); b.className = "mono"; b.textContent = `${req ? schemaName(req.schema) : "—"} → ${resp ? schemaName(resp.schema) : "—"}`;
    tr.append(m, p, s, b);
    tb.appendChild(tr);
  }
}

async function loadCloudSams() {
  const c = await api("GET", PATHS.cloudSam);
  cloudSamIds = new Set(((c.data && c.data.cloudSams) || []).map((x) => x.samId));
  if (STATE) render(STATE);
  return c;
}

async function loadSettings() {
  await loadOpenApi();
  loadNames();
  const r = await api("GET", PATHS.settings);
  if (r.ok) {
    $("reader-current").textContent = r.data.defaultReader || "—";
    if (r.data.defaultReader) $("reader-list").value = r.data.defaultReader;
    $("cors-hosts").value = (r.data.corsHosts || []).join("\n");
    const tls = r.data.tls;  // absent while the agent serves plain HTTP
    const when = (s) => new Date(s * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
    fill("kv-tls", tls ? { serverNotAfter: when(tls.serverNotAfter), caNotAfter: when(tls.caNotAfter) } : null);
  }
  const c = await loadCloudSams();
  const tb = $("cloudsam-table").querySelector("tbody");
  tb.textContent = "";
  ((c.data && c.data.cloudSams) || []).forEach((s, i) => {
    const tr = document.createElement("tr");
    for (const v of [i + 1, s.samId, s.hospitalId, s.hospitalName, s.hospitalShortName, s.comPort || ""]) {
      const td = document.createElement("td"); td.textContent = v === undefined ? "" : String(v); tr.appendChild(td);
    }
    tb.appendChild(tr);
  });
}

// ------------------------------------------------------------------ webcam QR (where the browser allows)

let scanStream = null;
async function scanQr() {
  const out = $("res-vhc");
  if (scanStream) { stopScan(); return; }
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    out.textContent = t("scan.unsupported"); return;
  }
  let detector;
  try { detector = new window.BarcodeDetector({ formats: ["qr_code"] }); } catch (e) { out.textContent = t("scan.unsupported"); return; }
  try { scanStream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }); } catch (e) { out.textContent = t("scan.nocamera"); return; }
  const video = $("scan-video");
  $("scan-box").hidden = false;
  video.srcObject = scanStream;
  await video.play();
  out.textContent = t("scan.scanning");
  const tick = async () => {
    if (!scanStream) return;
    try {
      const codes = await detector.detect(video);
      if (codes.length) { $("vhc-token").value = codes[0].rawValue; stopScan(); verifyVirtualHc(); return; }
    } catch (e) { /* next frame */ }
    setTimeout(tick, 250);
  };
  tick();
}
function stopScan() {
  if (scanStream) for (const tr of scanStream.getTracks()) tr.stop();
  scanStream = null;
  $("scan-box").hidden = true;
}

async function verifyVirtualHc() {
  const token = $("vhc-token").value.trim();
  show("res-vhc", await api("POST", PATHS.vhc, { token }));
}

// ------------------------------------------------------------------ wiring

function on(id, fn) { $(id).addEventListener("click", fn); }
function stype(id) { return $(id).value.trim() || "01"; }

function wire() {
  on("lang", toggleLang);
  on("btn-initial", async () => {
    const name = $("device-list").value;
    show("res-initial", await api("POST", PATHS.initial, name ? { name } : {}));
  });
  on("btn-finalize", async () => show("res-initial", await api("POST", PATHS.finalize)));
  on("btn-version", () => loadVersion("kv-version"));
  on("btn-time", async () => { const r = await api("GET", PATHS.time); show("res-time", r); fill("kv-time", r.data); });
  on("btn-sam-verify", async () => show("res-sam", await api("POST", PATHS.samVerify)));
  on("btn-sam-logout", async () => show("res-sam", await api("POST", PATHS.samLogout)));
  on("btn-sam-basic", async () => { const r = await api("GET", PATHS.samBasic); show("res-sam-basic", r); fill("kv-sam", r.ok ? r.data : null); });
  on("btn-sig-sam", async () => show("res-sig-sam", await api("POST", PATHS.samSig, { serviceType: stype("stype-sam") })));
  on("btn-hpc-verify", async () => {
    const pin = $("hpc-pin").value;
    $("hpc-pin").value = "";   // the PIN is not kept in the page
    show("res-hpc", await api("POST", PATHS.hpcVerify, { pin }));
  });
  on("btn-hpc-logout", async () => show("res-hpc", await api("DELETE", PATHS.hpcLogout)));
  on("btn-mobile", async () => {
    let body;
    try { body = JSON.parse($("mobile-json").value); } catch (e) { $("res-mobile").textContent = String(e); $("res-mobile").classList.add("err"); return; }
    show("res-mobile", await api("POST", PATHS.mobileHca, body));
  });
  on("btn-hpc-basic", async () => { const r = await api("GET", PATHS.hpcBasic); show("res-hpc-basic", r); fill("kv-hpc", r.ok ? r.data : null); });
  on("btn-sig-hpc", async () => show("res-sig-hpc", await api("POST", PATHS.hpcSig, { serviceType: stype("stype-hpc") })));
  on("btn-vhc", verifyVirtualHc);
  on("btn-scan", scanQr);
  on("btn-hc-logout", async () => show("res-vhc", await api("DELETE", PATHS.hcLogout)));
  on("btn-sig-hc", async () => show("res-sig-hc", await api("POST", PATHS.hcSig, { serviceType: stype("stype-hc") })));
  on("btn-sig-hpchc", async () => show("res-sig-hc", await api("POST", PATHS.hpchcSig, { serviceType: stype("stype-hc") })));
  on("btn-hc-basic", async () => { const r = await api("GET", PATHS.hcBasic); show("res-hc-basic", r); fill("kv-hc", r.ok ? r.data : null); });
  const pinCall = async (method, key) => {
    const pin = $("hc-pin").value;
    $("hc-pin").value = "";
    show("res-hcpin", await api(method, PATHS.hcPin, key ? { [key]: pin } : undefined));
  };
  on("btn-hcpin-verify", () => pinCall("POST", "pin"));
  on("btn-hcpin-set", () => pinCall("PUT", "newPin"));
  on("btn-hcpin-clear", () => pinCall("DELETE", null));
  on("btn-hcpin-query", async () => {
    const r = await api("GET", PATHS.hcPin);
    show("res-hcpin", r);
    if (r.ok) $("hc-pinset").textContent = yesNo(r.data.pinSet);
  });
  on("btn-cloudsam-import", async () => {
    const f = $("cloudsam-file").files[0];
    if (!f) return;
    let body;
    try { body = JSON.parse(await f.text()); } catch (e) { $("res-cloudsam").textContent = String(e); $("res-cloudsam").classList.add("err"); return; }
    show("res-cloudsam", await api("POST", PATHS.cloudSam, body));
    loadSettings();
  });
  on("btn-reader-save", async () => {
    const reader = $("reader-list").value || null;
    const r = await api("PUT", PATHS.readerSetting, { reader });
    show("res-reader", r);
    if (r.ok) $("reader-current").textContent = reader || "—";
  });
  on("btn-cors-save", async () => {
    const hosts = $("cors-hosts").value.split(/\s+/).map((s) => s.trim()).filter(Boolean);
    show("res-cors", await api("PUT", PATHS.corsSetting, { hosts }));
  });
  on("btn-rec-clear", async () => {
    localRecord = [];
    if (recordServed) await fetch(PATHS.record, { method: "DELETE" }).catch(() => {});
    refreshRecord();
  });
}

function onLangChange() { if (STATE) render(STATE); }

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  applyLang();
  wire();
  route();
  startEvents();
  loadNames();
  loadCloudSams();
  document.body.dataset.ready = "1";
});
