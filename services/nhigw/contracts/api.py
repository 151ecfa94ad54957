"""Declarative table of every HTTP endpoint, per service: the source of ``proto/openapi/*.json``.

Add a row here when you add an endpoint (append to your service's list only).
``request`` / ``response`` are pydantic models (None: no body / free-form JSON). The
OpenAPI generator (``nhigw proto``) and the drift test read this table; a test also
checks that every row is served by the service's aiohttp router.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from nhigw.contracts import cloud as c
from nhigw.contracts import models as m
from nhigw.contracts.routes import ROUTES, VNHI_UPLOAD


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    tag: str = ""


AGENT: list[Endpoint] = [
    Endpoint("GET", "/api/common/v1/Status", "取得目前控制軟體狀態", None, m.StatusResponse, "common"),
    Endpoint("GET", "/api/common/v1/Name", "取得目前可用裝置名稱清單", None, m.NameResponse, "common"),
    Endpoint("GET", "/api/common/v1/Version", "取得目前控制軟體版本資訊", None, m.VersionResponse, "common"),
    Endpoint("POST", "/api/common/v1/Initial", "初始化控制軟體", m.InitialRequest, m.StatusCodeBody, "common"),
    Endpoint("POST", "/api/common/v1/Finalize", "結束作業，釋放所有資源", None, m.StatusCodeBody, "common"),
    Endpoint("POST", "/api/sam/v1/Verification", "安全模組與中心端驗證", None, m.StatusCodeBody, "sam"),
    Endpoint("POST", "/api/sam/v1/Logout", "安全模組登出", None, m.StatusCodeBody, "sam"),
    Endpoint("GET", "/api/sam/v1/Basic", "讀取安全模組基本資料", None, m.SamBasicResponse, "sam"),
    Endpoint("POST", "/api/sam/v1/Signature", "取得安全模組簽章", m.SignatureRequest, m.SignatureResponse, "sam"),
    Endpoint("POST", "/api/hpc/v1/Verification/Hpc", "驗證醫事人員卡 PIN 碼", m.PinRequest, m.StatusCodeBody, "hpc"),
    Endpoint("POST", "/api/hpc/v1/Signature", "取得醫事人員簽章", m.SignatureRequest, m.SignatureResponse, "hpc"),
    Endpoint("DELETE", "/api/hpc/v1/Logout", "醫事人員卡登出", None, m.StatusCodeBody, "hpc"),
    Endpoint("GET", "/api/hc/v1/Basic", "讀取保險對象基本資料", None, m.HcBasicResponse, "hc"),
    Endpoint("POST", "/api/hc/v1/Signature/Hc", "取得健保卡簽章 (SAM + HC)", m.SignatureRequest, m.SignatureResponse, "hc"),
    Endpoint("POST", "/api/hc/v1/Signature/HpcHc", "取得三卡驗證簽章 (SAM + HPC + HC)", m.SignatureRequest, m.SignatureResponse, "hc"),
    Endpoint("DELETE", "/api/hc/v1/Logout", "健保卡登出", None, m.StatusCodeBody, "hc"),
    Endpoint("GET", "/api/common/v1/Events", "卡片與狀態事件串流 (text/event-stream; event: status, data: StatusResponse)", None, m.StatusResponse, "common"),
    Endpoint("GET", "/api/swagger/v1/swagger.json", "OpenAPI 文件 (Swagger UI: /api/swagger/index.html)", None, None, "swagger"),
    Endpoint("GET", "/api/common/v1/Record", "取得 API 執行記錄", None, m.RecordResponse, "common"),
    Endpoint("DELETE", "/api/common/v1/Record", "清除 API 執行記錄", None, m.StatusCodeBody, "common"),
    Endpoint("GET", "/api/common/v1/ServerDateTime", "取得讀卡機或伺服器日期時間", None, m.ServerDateTimeResponse, "common"),
    Endpoint("GET", "/api/common/v1/Settings", "取得設定 (預設讀卡機、CORS 主機)", None, m.AgentSettingsResponse, "settings"),
    Endpoint("PUT", "/api/common/v1/Settings/Reader", "設定預設 PC/SC 讀卡機", m.ReaderSettingRequest, m.AgentSettingsResponse, "settings"),
    Endpoint("PUT", "/api/common/v1/Settings/Cors", "設定 CORS 主機清單", m.CorsSettingRequest, m.AgentSettingsResponse, "settings"),
    Endpoint("GET", "/api/common/v1/Settings/CloudSam", "已匯入的雲端安全模組", None, m.CloudSamListResponse, "settings"),
    Endpoint("POST", "/api/common/v1/Settings/CloudSam", "匯入雲端安全模組檔案 (本文為檔案內容)", m.CloudSamFile, m.CloudSamListResponse, "settings"),
    Endpoint("DELETE", "/api/common/v1/Settings/CloudSam/{samId}", "刪除雲端安全模組", None, m.StatusCodeBody, "settings"),
    Endpoint("POST", "/api/hpc/v1/Verification/MobileHca", "驗證醫事人員行動憑證", m.MobileHcaRequest, m.StatusCodeBody, "hpc"),
    Endpoint("GET", "/api/hpc/v1/Basic", "讀取醫事人員基本資料", None, m.HpcBasicResponse, "hpc"),
    Endpoint("POST", "/api/hpc/v1/Pin", "輸入新的醫事人員卡 PIN 值", m.NewPinRequest, m.StatusCodeBody, "hpc"),
    Endpoint("PUT", "/api/hpc/v1/Pin", "解開鎖住的醫事人員卡 (PUK)", m.PukRequest, m.StatusCodeBody, "hpc"),
    Endpoint("GET", "/api/hc/v1/Pin", "檢查健保卡是否設定 PIN", None, m.HcPinResponse, "hc"),
    Endpoint("POST", "/api/hc/v1/Pin", "驗證健保卡 PIN", m.PinRequest, m.StatusCodeBody, "hc"),
    Endpoint("PUT", "/api/hc/v1/Pin", "設定健保卡 PIN", m.NewPinRequest, m.StatusCodeBody, "hc"),
    Endpoint("DELETE", "/api/hc/v1/Pin", "停用健保卡 PIN", None, m.StatusCodeBody, "hc"),
    Endpoint("POST", "/api/hc/v1/Verification/VirtualHc", "驗證虛擬健保卡 (QRCode)", m.TokenRequest, m.StatusCodeBody, "hc"),
    Endpoint("POST", "/api/hc/v1/VirtualHc/ReadBasic", "以 QRCode 讀取虛擬健保卡基本資料", m.TokenRequest, m.VirtualHcBasic, "hc"),
    Endpoint("GET", "/api/hc/v1/VirtualHc/Import", "取得虛擬健保卡轉移碼 (原設備登出)", None, m.VirtualHcExportResponse, "hc"),
    Endpoint("POST", "/api/hc/v1/VirtualHc/Import", "匯入虛擬健保卡轉移碼", m.TokenRequest, m.StatusCodeBody, "hc"),
    Endpoint("GET", "/api/hc/v1/OrganDonate", "讀取實體健保卡器官捐贈及安寧緩和註記", None, m.OrganDonateResponse, "hc"),
    Endpoint("PUT", "/api/hc/v1/OrganDonate", "寫入實體健保卡器官捐贈及安寧緩和註記", m.OrganDonateRequest, m.StatusCodeBody, "hc"),
]

GATEWAY: list[Endpoint] = [
    Endpoint("GET", "/api/workstations", "工作站清單與卡片狀態 (list workstations and their states)", None, None, "gateway"),
    Endpoint("POST", "/api/v1/{path}", "業務邏輯 (business route; pass-through or one-call with X-Workstation; Idempotency-Key, X-Deadline-Ms)", None, None, "business"),
    Endpoint("POST", "/test/v1/{path}", "測試卡 API 轉送至雲端 (the cloud's test-card API passed through, e.g. ApplyVirtualHc/Apply; not the simulator's admin API)", None, None, "business"),
    Endpoint("POST", "/V2000/VNHI_Upload", "IC 資料上傳 (6.0 mode; queued and audited as a write, sent to --upload-cloud; pass-through or one-call with X-Workstation: no sSamId/sHospId/sClientRandom/sSignature)", None, None, "business"),
    Endpoint("GET", "/api/workstations/{ws}/{component}", "轉送元件 API 至工作站 (forward a component GET to a workstation's agent)", None, None, "gateway"),
    Endpoint("POST", "/api/workstations/{ws}/{component}", "轉送元件 API 至工作站 (forward a component POST, e.g. hpc/v1/Verification/Hpc)", None, None, "gateway"),
    Endpoint("DELETE", "/api/workstations/{ws}/{component}", "轉送元件 API 至工作站 (forward a component DELETE, e.g. hpc/v1/Logout)", None, None, "gateway"),
    Endpoint("GET", "/api/ops/me", "目前金鑰的角色與權限 (this key's role, hospital scope and what it may do)", None, None, "ops"),
    Endpoint("GET", "/api/ops/history", "近幾小時請求歷史 (the last hours per minute and per route, shared by replicas; ?hours=3; viewer)", None, None, "ops"),
    Endpoint("POST", "/api/ops/requests/search", "請求瀏覽 (recent business requests by workstation, route, outcome, time, patient ID; viewer)", m.RequestSearch, None, "ops"),
    Endpoint("GET", "/api/ops/dead-letters", "死信佇列 (dead letters; viewer)", None, None, "ops"),
    Endpoint("GET", "/api/ops/dead-letters/{id}", "死信與其每次送達紀錄 (a dead letter with the history of its deliveries and attempts; viewer)", None, None, "ops"),
    Endpoint("POST", "/api/ops/dead-letters/bulk-retry", "批次重送死信，上限由操作人員指定 (retry at most max dead letters that never reached the cloud; operator)", m.DeadLetterBulkRetryRequest, m.DeadLetterBulkRetryResponse, "ops"),
    Endpoint("POST", "/api/ops/dead-letters/{id}/retry", "重送死信 (requeue a dead letter that never reached the NHI cloud; operator)", None, None, "ops"),
    Endpoint("POST", "/api/ops/dead-letters/{id}/resend", "確認後重送可能已送達之寫入 (resend a write that may have landed, after reconciling; audited; operator)", m.DeadLetterResendRequest, m.StatusCodeBody, "ops"),
    Endpoint("DELETE", "/api/ops/dead-letters/{id}", "捨棄死信 (discard a dead letter; operator)", None, None, "ops"),
    Endpoint("GET", "/api/admin/clients", "HIS 用戶端與操作金鑰清單 (HIS clients and operator keys; admin)", None, None, "admin"),
    Endpoint("POST", "/api/admin/clients", "新增用戶端，金鑰只顯示一次 (add a client; its key is shown once; admin)", m.ClientCreateRequest, None, "admin"),
    Endpoint("DELETE", "/api/admin/clients/{name}", "移除用戶端 (remove a client; admin)", None, m.StatusCodeBody, "admin"),
    Endpoint("POST", "/api/admin/enrol-tokens", "工作站代理程式一次性註冊碼 (a one-time agent enrolment token; admin)", m.EnrolTokenRequest, None, "admin"),
    Endpoint("GET", "/api/audit", "稽核紀錄 (audit records of the client's hospital, paged; ?since=&until=&limit=&order=asc|desc&cursor=)", None, None, "audit"),
    Endpoint("GET", "/api/audit/verify", "驗證稽核雜湊鏈 (verify the audit hash chain; an all-hospitals viewer or higher)", None, None, "audit"),
    Endpoint("GET", "/metrics", "Prometheus metrics", None, None, "ops"),
    Endpoint("GET", "/healthz", "liveness", None, None, "ops"),
    Endpoint("GET", "/readyz", "readiness: named checks (bus, registry caught up, background tasks)", None, None, "ops"),
    Endpoint("POST", "/api/sessions", "開啟裝置工作階段 (open a device session: token for X-Device-Session)", m.DeviceSessionOpenRequest, m.DeviceSessionResponse, "sessions"),
    Endpoint("GET", "/api/sessions", "裝置工作階段狀態 (the X-Device-Session's card states)", None, m.DeviceSessionResponse, "sessions"),
    Endpoint("DELETE", "/api/sessions", "關閉裝置工作階段 (close the X-Device-Session)", None, m.StatusCodeBody, "sessions"),
    Endpoint("POST", "/api/sessions/hc/v1/Verification/VirtualHc", "工作階段驗證虛擬健保卡 QR Code (verify a virtual HC in this session)", m.TokenRequest, m.DeviceSessionResponse, "sessions"),
    Endpoint("GET", "/api/sessions/hc/v1/VirtualHc/Import", "匯出轉移碼，本工作階段登出虛擬健保卡 (export the transfer code)", None, m.VirtualHcExportResponse, "sessions"),
    Endpoint("POST", "/api/sessions/hc/v1/VirtualHc/Import", "以轉移碼匯入虛擬健保卡 (import a transfer code into this session)", m.TokenRequest, m.DeviceSessionResponse, "sessions"),
    Endpoint("POST", "/api/sessions/hc/v1/Logout", "工作階段虛擬健保卡登出 (log the session's virtual HC out)", None, m.DeviceSessionResponse, "sessions"),
    Endpoint("POST", "/api/sessions/hpc/v1/Verification/MobileHca", "工作階段行動醫事憑證登入 (mobile HCA login in this session)", m.MobileHcaRequest, m.DeviceSessionResponse, "sessions"),
    Endpoint("POST", "/api/sessions/hpc/v1/Logout", "工作階段醫事人員登出 (log the session's HCA out)", None, m.DeviceSessionResponse, "sessions"),
]

def _business_rows() -> list[Endpoint]:
    """One row per business route of ``routes.py``, with its models from ``cloud.ROUTE_MODELS``."""
    rows = []
    for r in ROUTES.values():
        req, resp = c.ROUTE_MODELS[r.path]
        kind = " or ".join({"sam": "SAM", "hc": "SAM+HC", "hpc": "SAM+HPC", "hpchc": "SAM+HPC+HC"}[k.value] for k in r.accepts)
        note = f" [{kind} signature, serviceType {r.serviceType}{', write: honours Idempotency-Key' if r.write else ''}]"
        rows.append(Endpoint("POST", f"/api/v1/{r.path}", r.summary + note, req, resp, "business"))
    return rows


_UPLOAD_SUMMARY = "IC 資料上傳 (6.0 模式; real host medvpndti.nhi.gov.tw) [SAM signature, serviceType 30, as sSamId/sHospId/sClientRandom/sSignature; HTTP 200 with RtnCode]"

SIM: list[Endpoint] = [
    *_business_rows(),
    Endpoint("POST", VNHI_UPLOAD.url, _UPLOAD_SUMMARY, c.VnhiUploadRequest, c.VnhiUploadResponse, "upload"),
    Endpoint("POST", "/dc/v1/SamAuth/Challenge", "SAM 與 DC 認證: challenge", m.SamAuthChallengeRequest, m.SamAuthChallengeResponse, "dc"),
    Endpoint("POST", "/dc/v1/SamAuth/Verify", "SAM 與 DC 認證: verify", m.SamAuthVerifyRequest, m.SamAuthVerifyResponse, "dc"),
    Endpoint("POST", "/dc/v1/VirtualHc/Verify", "虛擬健保卡 QR token 驗證 (SAM-signed; at most 10 times, at one institution)", m.VirtualHcVerifyRequest, m.VirtualHcVerifyResponse, "dc"),
    Endpoint("POST", "/dc/v1/VirtualHc/Transfer", "虛擬健保卡轉移碼 (closes the session)", m.VirtualHcTransferRequest, m.VirtualHcQrResponse, "dc"),
    Endpoint("GET", "/dc/v1/ServerDateTime", "中心端日期時間", None, m.DcServerDateTimeResponse, "dc"),
    Endpoint("POST", "/test/v1/Sam/Register", "測試: 登錄虛擬 SAM 公鑰 (provision a virtual SAM)", m.SamRegistration, m.StatusCodeBody, "test"),
    Endpoint("POST", "/test/v1/CloudSam/Issue", "測試: 核發雲端安全模組檔案 (issue a cloud SAM file)", m.CloudSamIssueRequest, m.CloudSamFile, "test"),
    Endpoint("POST", "/test/v1/VirtualHc/QrCode", "測試: 取得虛擬健保卡 QRCode (card no, birthday; 是否有PIN hasPin, 是否驗PIN verifyPin)", m.VirtualHcQrRequest, m.VirtualHcQrResponse, "test"),
    Endpoint("POST", "/test/v1/ApplyVirtualHc/Apply", "申請虛擬健保卡測試卡 (SAM signature, serviceType 06; at most 10 per institution)", c.ApplyVirtualHcRequest, c.ApplyVirtualHcResponse, "test"),
    Endpoint("POST", "/test/v1/ApplyVirtualHc/List", "本院所的虛擬健保卡測試卡 (SAM signature, serviceType 06)", c.TestCardListRequest, c.TestCardList, "test"),
    Endpoint("POST", "/test/v1/ApplyVirtualHc/Delete", "刪除本院所的一張測試卡 (SAM signature, serviceType 06; frees its place of the 10)", c.TestCardDeleteRequest, c.CloudResponse, "test"),
    Endpoint("POST", "/test/v1/VirtualHc/CriticalIllness", "測試卡重大傷病註記", c.TestCriticalIllnessRequest, c.CloudResponse, "test"),
    Endpoint("POST", "/test/v1/VirtualHc/Identity", "測試卡身分註記", c.TestIdentityRequest, c.CloudResponse, "test"),
    Endpoint("POST", "/test/v1/VirtualHc/OrganDonate", "測試卡器捐安寧註記", c.TestOrganDonateRequest, c.CloudResponse, "test"),
    Endpoint("POST", "/test/v1/Faults", "admin: add a fault rule (admin API must be enabled)", c.Fault, c.FaultList, "admin"),
    Endpoint("GET", "/test/v1/Faults", "admin: the fault rules left", None, c.FaultList, "admin"),
    Endpoint("DELETE", "/test/v1/Faults", "admin: clear every fault rule", None, c.FaultList, "admin"),
    Endpoint("POST", "/test/v1/Clock", "admin: shift the simulator's clock", c.ClockRequest, m.StatusCodeBody, "admin"),
    Endpoint("GET", "/test/v1/Stats", "calls, executed writes per route and per Idempotency-Key", None, c.StatsResponse, "admin"),
    Endpoint("GET", "/test/v1/Console/Requests", "admin: the last requests the simulator received, decoded and masked, with their signature checks and answers (console /console/)", None, c.ConsoleRequests, "admin"),
    Endpoint("GET", "/test/v1/Console/Overview", "admin: institutions, an institution's test cards (?hospitalId=) and the test patients, IDs masked (console /console/)", None, c.ConsoleOverview, "admin"),
    Endpoint("GET", "/api/swagger/v1/swagger.json", "雲端業務 API 的 OpenAPI 文件 (Swagger UI: /api/swagger/index.html)", None, None, "swagger"),
    Endpoint("GET", "/test/swagger/v1/swagger.json", "測試卡 API 的 OpenAPI 文件 (Swagger UI: /test/swagger/index.html)", None, None, "swagger"),
]

# The compat service's rows live beside it (``nhigw.compat.endpoints.COMPAT``): contracts imports nothing else of the project.


# The error body each service documents (``default`` response); ErrorBody unless listed.
ERROR_MODELS: dict[str, type[BaseModel]] = {"compat": m.LegacyErrorBody}
