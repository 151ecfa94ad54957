/* The simulator's developer console. Reads GET /test/v1/Console/Requests (the last requests the
   cloud received, masked, with their signature checks and answers) and /test/v1/Console/Overview
   (institutions, test cards, test patients). Traditional Chinese first; English on the toggle.
   Every value from a request is put in the page as text (textContent), never as HTML. */
"use strict";

const EN = {
  "title": "NHI cloud simulator: developer console", "hosp": "Institution",
  "off.title": "The admin API is off", "off.help": "The console is protected as the simulator's admin API is: start the simulator with nhigw sim --admin or NHIGW_SIM_ADMIN=1.",
  "req.title": "Requests received", "req.help": "The last requests the cloud received (those that may change state): the decoded body (national IDs and signatures masked), the signature checks passed or failed, and the answer. Click a row for details.",
  "req.refused": "Refused requests only", "req.path": "path contains…", "req.at": "Time", "req.call": "Request", "req.checks": "Signature checks", "req.reason": "Result / reason", "req.empty": "No requests yet.",
  "tc.title": "This institution's virtual test cards", "tc.help": "Apply with /test/v1/ApplyVirtualHc/Apply (at most 10 per institution); get a QR code by card number and birthday (/test/v1/VirtualHc/QrCode).",
  "pt.title": "Test patients", "p.card": "Card no.", "p.name": "Name", "p.id": "ID no. (masked)", "p.birthday": "Birthday", "p.sex": "Sex", "p.insured": "Insured",
  "p.validity": "Card valid until", "p.counter": "Visits left", "p.visits": "Visits here",
  "d.body": "Request body (masked)", "d.checks": "Signature checks", "d.answer": "Answer",
};
const ZH = {
  "ok": "成功", "reset": "連線被重設 (未回覆)", "remaining": "尚可申請", "cards": "張", "records": "筆，最多保留", "none": "無", "rolledback": "已退掛",
  "updated": "更新於", "insured.1": "在保", "insured.2": "未在保", "insured.3": "停保/欠費",
  "ck.serviceType": "服務類別相符", "ck.sam": "SAM 已登錄於此院所", "ck.contract": "院所合約有效", "ck.cardIds": "卡片識別欄位齊全",
  "ck.challenge": "驗證挑戰值有效", "ck.signature": "簽章驗證", "ck.clientRandom": "clientRandom 未曾使用",
};
const ZH_EN = {
  "ok": "OK", "reset": "connection reset (no answer)", "remaining": "may still apply for", "cards": "cards", "records": "kept, at most", "none": "none", "rolledback": "rolled back",
  "updated": "updated", "insured.1": "insured", "insured.2": "not insured", "insured.3": "suspended",
  "ck.serviceType": "serviceType fits the route", "ck.sam": "SAM registered for this institution", "ck.contract": "institution's contract active", "ck.cardIds": "card ids present",
  "ck.challenge": "challenge valid", "ck.signature": "signature verifies", "ck.clientRandom": "clientRandom not used before",
};
let LANG = localStorage.getItem("nhigw.lang") || "zh";
const POLL_MS = Math.max(200, Number(new URLSearchParams(location.search).get("poll_ms")) || 1000);
const t = (k) => (LANG === "en" ? ZH_EN[k] : ZH[k]) ?? k;
const $ = (id) => document.getElementById(id);

function applyLang() {
  document.documentElement.lang = LANG === "en" ? "en" : "zh-Hant";
  for (const el of document.querySelectorAll("[data-i18n]")) {
    if (el.dataset.zh === undefined) el.dataset.zh = el.textContent;
    const k = el.dataset.i18n;
    el.textContent = LANG === "en" && EN[k] !== undefined ? EN[k] : el.dataset.zh;
  }
  for (const el of document.querySelectorAll("[data-i18n-ph]")) {
    if (el.dataset.zhPh === undefined) el.dataset.zhPh = el.placeholder;
    el.placeholder = LANG === "en" ? EN[el.dataset.i18nPh] : el.dataset.zhPh;
  }
  $("lang").textContent = LANG === "en" ? "中文" : "English";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  const data = await r.json();
  return { status: r.status, data };
}

// ------------------------------------------------------------------ requests

let records = [];
let lastSeq = 0;
let maxKept = 200;
const open = new Set();

const refused = (r) => r.status === 0 || r.status >= 400 || !(r.statusCode === null || r.statusCode === undefined || r.statusCode === 0 || r.statusCode === "0000");

function reason(r) {
  if (r.status === 0) return t("reset");
  if (!refused(r)) return t("ok");
  const failed = r.checks.find((c) => !c.ok);
  const a = r.answer && typeof r.answer === "object" ? r.answer : {};
  const msg = (LANG === "en" ? a.messageEn : a.message) || a.message || "";
  const parts = [];
  if (failed) parts.push(`${t("ck." + failed.name)} ✘ ${failed.detail}`);
  else if (msg || a.detail) parts.push([msg, a.detail].filter(Boolean).join(": "));
  else if (typeof r.answer === "string") parts.push(r.answer);
  return parts.join(" ");
}

function renderRequests() {
  const body = $("req-table").tBodies[0];
  body.replaceChildren();
  const onlyRefused = $("only-refused").checked;
  const needle = $("f-path").value.trim().toLowerCase();
  const shown = records.filter((r) => (!onlyRefused || refused(r)) && (!needle || r.path.toLowerCase().includes(needle)));
  for (const r of shown.slice().reverse()) {  // newest on top
    const tr = document.createElement("tr");
    tr.className = "row " + (refused(r) ? "refused" : "passed");
    tr.dataset.seq = r.seq;
    tr.dataset.code = r.statusCode ?? "";
    cell(tr, r.seq, "num");
    cell(tr, r.at.replace("T", " ").slice(0, 23), "mono");
    cell(tr, `${r.method} ${r.path}`, "mono");
    cell(tr, r.status || "—", "num");
    cell(tr, r.statusCode ?? "", "code num");
    const cks = cell(tr, "");
    for (const c of r.checks) {
      const s = document.createElement("span");
      s.className = "ck " + (c.ok ? "ok" : "bad");
      s.dataset.check = c.name;
      s.textContent = (c.ok ? "✔ " : "✘ ") + c.name;
      s.title = t("ck." + c.name);
      cks.appendChild(s);
    }
    cell(tr, reason(r), "reason");
    cell(tr, r.ms.toFixed(1), "num");
    tr.addEventListener("click", () => { if (open.has(r.seq)) open.delete(r.seq); else open.add(r.seq); renderRequests(); });
    body.appendChild(tr);
    if (open.has(r.seq)) body.appendChild(detail(r));
  }
  $("req-empty").hidden = records.length > 0;
  $("req-count").textContent = `(${records.length} ${t("records")} ${maxKept})`;
}

function detail(r) {
  const frag = $("detail-tpl").content.cloneNode(true);
  const tr = frag.querySelector("tr");
  tr.dataset.seq = r.seq;
  for (const el of tr.querySelectorAll("[data-i18n]")) if (LANG === "en" && EN[el.dataset.i18n]) el.textContent = EN[el.dataset.i18n];
  const fmt = (v) => (typeof v === "string" ? v : JSON.stringify(v, null, 2));
  tr.querySelector(".body").textContent = fmt(r.body ?? "");
  tr.querySelector(".answer").textContent = fmt(r.answer ?? "");
  const ul = tr.querySelector(".checks");
  for (const c of r.checks) {
    const li = document.createElement("li");
    li.className = c.ok ? "ok" : "bad";
    li.dataset.check = c.name;
    li.textContent = `${c.ok ? "✔" : "✘"} ${t("ck." + c.name)} (${c.name})${c.detail ? ": " + c.detail : ""}`;
    ul.appendChild(li);
  }
  if (!r.checks.length) { const li = document.createElement("li"); li.textContent = t("none"); ul.appendChild(li); }
  return tr;
}

// ------------------------------------------------------------------ cards and patients

let hospital = new URLSearchParams(location.search).get("hospitalId") || "";

function visits(p) {
  const span = document.createElement("span");
  span.className = "mono";
  for (const v of p.visits) {
    const s = document.createElement("div");
    s.textContent = `${v.treatDateTime} ${v.sequenceNumber || v.treatmentItem} ${v.mainCode}${v.rolledBack ? " (" + t("rolledback") + ")" : ""}`;
    if (v.rolledBack) s.className = "rb";
    span.appendChild(s);
  }
  return span;
}

function renderOverview(o) {
  const sel = $("hosp");
  const want = o.hospitalId || "";
  sel.replaceChildren(...o.institutions.map((i) => {
    const opt = document.createElement("option");
    opt.value = i.hospitalId;
    opt.textContent = `${i.hospitalId} ${i.hospitalName}${i.samIds.length ? " (SAM " + i.samIds.join(", ") + ")" : ""}`;
    return opt;
  }));
  sel.value = want;
  hospital = want;
  patientRows($("tc-table"), o.testCards, false);
  $("tc-remaining").textContent = `(${o.testCards.length} ${t("cards")}; ${t("remaining")} ${o.remaining})`;
  patientRows($("pt-table"), o.patients, true);
}

// One row per card: card no, name, masked ID, birthday, sex, (insurance columns), the last visits here.
function patientRows(table, patients, insurance) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const p of patients) {
    const tr = document.createElement("tr");
    tr.dataset.card = p.cardSn;
    for (const v of [p.cardSn, p.name, p.idCardNum, p.birthday, p.sex]) cell(tr, v, "mono");
    if (insurance) {
      cell(tr, t("insured." + p.insuranceStatus));
      cell(tr, p.cardValidity, "mono");
      cell(tr, p.treatmentCounter, "num");
    }
    cell(tr, "").appendChild(visits(p));
    body.appendChild(tr);
  }
}

// ------------------------------------------------------------------ polling

function off(data) {
  $("off").hidden = false;
  $("off-msg").textContent = `${data.statusCode ?? ""} ${(LANG === "en" ? data.messageEn : data.message) || ""} ${data.detail || ""}`;
}

let overviewData = null;
let drawn = false;

async function tick() {
  try {
    const rq = await getJson(`/test/v1/Console/Requests?after=${lastSeq}`);
    if (rq.status !== 200) { off(rq.data); return; }
    $("off").hidden = true;
    maxKept = rq.data.max;
    for (const r of rq.data.requests) { records.push(r); lastSeq = Math.max(lastSeq, r.seq); }
    if (records.length > maxKept) records = records.slice(records.length - maxKept);
    // Re-drawn only when something changed, so a row being clicked is not replaced under the pointer.
    if (rq.data.requests.length || !drawn) { renderRequests(); drawn = true; }
    const ov = await getJson(`/test/v1/Console/Overview${hospital ? "?hospitalId=" + encodeURIComponent(hospital) : ""}`);
    if (ov.status === 200 && JSON.stringify(ov.data) !== JSON.stringify(overviewData)) { overviewData = ov.data; renderOverview(ov.data); }
    $("updated").textContent = `${t("updated")} ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $("updated").textContent = String(e);
  } finally {
    document.body.dataset.ready = "1";
  }
}

async function loop() {
  await tick();
  setTimeout(loop, POLL_MS);
}

window.addEventListener("DOMContentLoaded", () => {
  applyLang();
  $("lang").addEventListener("click", () => {
    LANG = LANG === "en" ? "zh" : "en";
    localStorage.setItem("nhigw.lang", LANG);
    applyLang();
    renderRequests();
    if (overviewData) renderOverview(overviewData);
    tick();
  });
  $("hosp").addEventListener("change", () => { hospital = $("hosp").value; tick(); });
  $("only-refused").addEventListener("change", renderRequests);
  $("f-path").addEventListener("input", renderRequests);
  loop();
});
