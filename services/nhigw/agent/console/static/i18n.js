/* Traditional Chinese first (the HTML carries it); English on the toggle. No build step. */
"use strict";
const I18N = {
  en: {
    "title": "Reader control console",
    "common.title": "Common functions", "common.init": "Initialise device",
    "common.init.help": "With no device chosen, tries in order: the last device, a cloud SAM, a physical SAM.",
    "common.devices": "Devices", "common.any": "(any)", "common.connect": "Connect", "common.disconnect": "Disconnect",
    "common.version": "Version", "common.getversion": "Get version",
    "common.time": "Reader time", "common.time.help": "A physical reader gives its own time; a cloud SAM gives the data centre's.",
    "common.gettime": "Get reader time",
    "t.fn": "Function", "t.init": "Initialised", "t.logout": "Log out", "t.basic": "Basic data", "t.readbasic": "Read basic data",
    "t.servicetype": "Service type", "t.sign": "Sign", "t.save": "Save",
    "sam.title": "Security module", "sam.verify.title": "Verify and log out",
    "sam.verify.help": "The SAM authenticates with the NHI data centre, which checks the contract. A cloud SAM verifies itself; a physical SAM never does (too many failures lock it).",
    "sam.verify": "Verify SAM", "sam.basic.help": "Read the SAM's basic data. A physical SAM has no hospital name.", "sam.sig": "SAM signature",
    "hca.title": "Healthcare professional", "hca.pin.title": "Verify the HPC PIN", "hca.pin.help": "Enter the 6 to 8 digit PIN, then press Verify PIN.",
    "hca.verify": "Verify PIN", "hca.mobile.title": "Verify a mobile HCA", "hca.mobile": "Verify mobile HCA",
    "hca.mobile.help": "Paste the login data from the mobile HCA app (JSON: idNo, loginDateTime, signatureCertificate, signature ...).",
    "hca.sig": "Professional signature",
    "hc.title": "Health card", "hc.virtual.title": "Verify a virtual health card", "hc.virtual": "Verify virtual HC",
    "hc.virtual.help": "Enter the virtual card's QR code data. A physical card needs no verification.",
    "hc.scan": "Scan with camera", "hc.sig": "Signature", "hc.sig.help": "An HC signature or the three-card signature, for the Web API calls that follow.",
    "hc.sig3": "Three-card signature", "hc.sigrow": "HC signature", "hc.sig3row": "Three-card signature",
    "hc.basic.help": "Read the health card's basic data; a virtual card has no DateIssue.",
    "hc.pinset": "PIN set", "hc.pin.verify": "Verify", "hc.pin.set": "Set", "hc.pin.clear": "Disable", "hc.pin.query": "Query",
    "hc.pin.verifyrow": "Verify PIN", "hc.pin.setrow": "Set PIN", "hc.pin.clearrow": "Disable PIN", "hc.pinok": "PIN verified",
    "set.title": "Settings", "set.cloudsam": "Cloud SAM",
    "set.cloudsam.help": "Load a cloud SAM into the component. It is stored encrypted in this user's configuration on this machine; copied to another machine it cannot be used.",
    "set.hosp": "Hospital ID", "set.name": "Name", "set.short": "Short name", "set.choose": "Cloud SAM file", "set.import": "Import cloud SAM",
    "set.cloudsam.note": "Once loaded, the file may be deleted from this machine; keep your cloud SAM safe.",
    "set.reader": "Default PC/SC reader", "set.readers": "Readers", "set.current": "Current default reader",
    "set.cors": "Hosts allowed to call from a browser (CORS)", "set.cors.help": "One host name per line, * wildcards allowed (default *.nhi.gov.tw). Unlisted web sites cannot call this component from a browser.",
    "set.tls": "HTTPS certificate", "set.tls.server": "Server certificate ends", "set.tls.ca": "Local CA ends",
    "set.tls.help": "This component's server certificate is issued by a local certificate authority (CA) and renewed automatically; browsers trust that CA once nhigw agent trust has run, and again after the CA is renewed.",
    "sw.help": "The component API, from the OpenAPI document.", "sw.method": "Method", "sw.path": "Path", "sw.summary": "Summary", "sw.body": "Request / response",
    "about.title": "About", "about.text": "nhigw: an open, cross-platform implementation of the NHI reader control software 6.0. This console uses only the component API that HIS programs use.",
    "about.real": "SAM / HPC commands and the signature format are this project's own (the NHI's are not public); the real cloud does not accept them. HC basic data reads work on real cards.",
    "st.title": "Status", "st.device": "Device", "st.reader": "Reader", "st.sam": "SAM", "st.hpc": "HPC", "st.hc": "Health card",
    "st.pinset": "HC PIN set", "st.pinok": "HC PIN verified",
    "rec.title": "API call record", "rec.fn": "Function", "rec.result": "Result", "rec.clear": "Clear",
    // dynamic
    "connected": "Connected", "disconnected": "Not connected",
    "sam.0": "No SAM", "sam.n": "SAM", "sam.cloud": "Cloud SAM", "hpc.0": "No HPC", "hpc.n": "HPC", "hc.0": "No HC", "hc.n": "Health card", "hc.v": "Virtual HC",
    "s.none": "none", "s.present": "inserted", "s.ready": "ready", "s.verified": "verified", "s.pin": "PIN verified",
    "yes": "yes", "no": "no", "unknown": "unknown",
    "scan.unsupported": "This browser cannot read QR codes from the camera (no BarcodeDetector); paste the QR data instead.",
    "scan.nocamera": "No camera available or permission refused.", "scan.scanning": "Scanning... hold the QR code in front of the camera.",
    "waiting": "This endpoint is not served by this agent yet.",
    "lang": "中文",
  },
  zh: {
    "connected": "已連接", "disconnected": "未連接",
    "sam.0": "無安全模組", "sam.n": "安全模組", "sam.cloud": "雲端安全模組", "hpc.0": "無醫事人員卡", "hpc.n": "醫事人員卡", "hc.0": "無健保卡", "hc.n": "健保卡", "hc.v": "虛擬健保卡",
    "s.none": "無", "s.present": "已插入", "s.ready": "可驗證", "s.verified": "已驗證", "s.pin": "已驗 PIN",
    "yes": "是", "no": "否", "unknown": "未知",
    "scan.unsupported": "此瀏覽器無法由攝影機讀取 QR-CODE (不支援 BarcodeDetector)，請直接貼上 QR-CODE 資料。",
    "scan.nocamera": "沒有可用的攝影機，或未獲授權。", "scan.scanning": "掃描中…請將 QR-CODE 對準攝影機。",
    "waiting": "此代理程式尚未提供這個端點。",
    "lang": "English",
  },
};
let LANG = localStorage.getItem("nhigw.lang") || "zh";
function t(key) {
  const d = I18N[LANG] || {};
  return d[key] !== undefined ? d[key] : (I18N.zh[key] !== undefined ? I18N.zh[key] : key);
}
function applyLang() {
  document.documentElement.lang = LANG === "en" ? "en" : "zh-Hant";
  for (const el of document.querySelectorAll("[data-i18n]")) {
    if (el.dataset.zh === undefined) el.dataset.zh = el.textContent;
    const key = el.dataset.i18n;
    el.textContent = LANG === "en" && I18N.en[key] !== undefined ? I18N.en[key] : el.dataset.zh;
  }
  const btn = document.getElementById("lang");
  if (btn) btn.textContent = t("lang");
}
function toggleLang() {
  LANG = LANG === "en" ? "zh" : "en";
  localStorage.setItem("nhigw.lang", LANG);
  applyLang();
  if (typeof onLangChange === "function") onLangChange();
}
