"""6.0 status codes (``statusCode``) with messages in Chinese and English.

Numbers and meanings follow the 6.0 error table as real HIS programs know it
(shared/reference/nhi-public-facts.md section 3.4). Where that table names a range but not
each number, or has no code for a rule, the nearest code it has is used and the choice is
noted beside the member: 1525 is 「Token 已超過驗證次數」 (the public client's table); a visit
whose treatment data are written cannot be rolled back: 3209 「已寫入診斷碼」 (3219 is
「就醫類別為數值才可退掛」, its own rule); 8203 (upload signature older than one hour) is the
upload host's RtnCode, which ``UploadData/Upload`` answers as its statusCode too. The 94xx
codes are this gateway's own; the 6.0 table leaves 9400-9499 unused. Only codes this project
emits are listed; ``StatusError`` carries one of them to the HTTP boundary, where it is
rendered as ``{"statusCode": n, "message": "...", "messageEn": "..."}``.

HTTP status: ``HTTP_STATUS`` below is the one place that decides it. Every answer that
carries a 6.0 code (0 or not) is HTTP 200, as the real 6.0 component and cloud answer:
real HIS code calls ``raise_for_status()`` and reads ``statusCode`` only from 2xx bodies
(facts section 3.3a), so a 4xx would reach its user as -1 「不明的錯誤」. The gateway's
own outcomes (9400-9410, 9415, 9416) are 200 too, for the same reason (9408 "still running" is 202).
Only refusals that no 6.0 program provokes stay non-2xx: a body that is not JSON (400),
no or unknown HIS key (401), a refused client, Origin or Host (403), no such route (404),
a method a route does not take (405), a body over the size cap (413), and an unexpected
failure (500, which the tests show never happens).
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    OK = 0
    NOT_INITIALIZED = 1000
    ALREADY_INITIALIZED = 1001
    NO_DEVICE = 1002
    PROD_TEST_MIXED = 1003
    QRCODE_EXPIRED = 1018
    QRCODE_MISSING = 1019
    QRCODE_REUSED = 1020
    QRCODE_TOKEN_EXPIRED = 1021
    QRCODE_TOKEN_MISSING = 1022
    QRCODE_TOKEN_REUSED = 1023
    NO_DEFAULT_READER = 1100
    NO_READER = 1101
    NO_CARD = 1102
    APP_SWITCH_FAILED = 1103
    PCSC_OTHER = 1199
    SAM_MODE1 = 1300
    SAM_MODE2 = 1301
    SAM_CONTRACT_OVER = 1302
    SAM_SUSPENDED = 1303
    SAM_CANCELLED = 1304
    HPC_MODE1 = 1400
    HPC_MODE2 = 1401
    HPC_MODE3 = 1402
    HPC_UNSUPPORTED = 1403
    HPC_PIN_FAILED = 1410
    HCA_SIGNATURE = 1420
    HCA_TIMEOUT = 1421
    HCA_CERT_VALIDITY = 1422
    HCA_CERT_UNTRUSTED = 1423
    HCA_CERT_REVOKED = 1424
    HC_MODE1 = 1500
    HC_MODE2 = 1501
    HC_MODE3 = 1502
    HC_NO_PIN = 1510
    HC_PIN_NOT_VERIFIED = 1511
    HC_DISABLE_PIN_FAILED = 1512
    HC_PIN_ALREADY_VERIFIED = 1513
    HC_PIN_FAILED = 1514
    HC_PHYSICAL_ONLY = 1515
    VHC_TOKEN = 1520
    VHC_FORMAT = 1521
    VHC_SIGNATURE = 1522
    VHC_TOKEN_COUNT = 1525
    VHC_NO_PIN_FUNCS = 1526
    VHC_ONLY = 1527
    NO_READER_BY_NAME = 1600
    DEFAULT_READER_DETECT = 1601
    CLOUD_SAM_FORMAT = 1610
    CLOUD_SAM_NOT_FOUND = 1611
    DC_CONNECTION = 1700
    DC_HTTP = 1702
    PARAM_FORMAT = 1704
    PARAM_MISSING = 1705
    PARAM_VALUE = 1706
    HCA_ELSEWHERE = 1707
    DC_UNDEFINED = 1799
    SIGNATURE_INVALID = 3100
    HC_PIN_REQUIRED = 3200
    CARD_CANCELLED = 3203
    TREATMENT_NUMBER_FAILED = 3204
    RESTRICTED = 3205
    NEWBORN_RULE = 3206
    REGISTRATION_NOT_FOUND = 3208
    DIAGNOSIS_WRITTEN = 3209
    ICD_ENCODE_FAILED = 3210
    OTHER_INSTITUTION = 3211
    NO_VISITS_LEFT = 3213
    PREVENT_RULE = 3214
    PREGNANT_RULE = 3216
    ROLLBACK_TOO_LATE = 3218
    ROLLBACK_NUMERIC_ONLY = 3219  # 「就醫類別為數值才可退掛」 (facts 3.3a); a written visit is 3209
    ROLLBACK_DONE = 3220
    NOT_INSURED = 3228
    DUPLICATE_UPLOAD = 3236
    ACCESS_TOKEN_INVALID = 3237
    ACCESS_TOKEN_EXPIRED = 3238
    VHC_QR_USED = 3244
    SIGNATURE_REUSED = 3245
    MISSING_KEY = 3300
    ICD_NOT_ENCODABLE = 3501
    CARD_UPDATE_NEEDED = 5003  # legacy-range: what SequelNumber/Next answers for an expired card (facts 3.3a)
    UPLOAD_SIGNATURE_EXPIRED = 8203
    CLOUD_SAM_OTHER_HOST = 9202
    # Gateway-specific (this project; 9xxx range left free by the 6.0 table is not used):
    WORKSTATION_OFFLINE = 9400
    WORKSTATION_TIMEOUT = 9401
    UPSTREAM_UNAVAILABLE = 9402
    OUTCOME_UNKNOWN = 9403
    UNAUTHORIZED = 9404
    NOT_FOUND = 9405
    UNSUPPORTED = 9406
    RATE_LIMITED = 9407
    IN_PROGRESS = 9408
    SESSION_LIMIT = 9409
    SESSION_GONE = 9410
    FORBIDDEN = 9411
    METHOD_NOT_ALLOWED = 9412
    BODY_TOO_LARGE = 9413
    NOT_JSON = 9414
    NOT_READY = 9415
    COMPONENT_FAILED = 9416  # the official 6.0 component (a bridged agent's backend) gave no 6.0 answer
    INTERNAL = 9499


MESSAGES: dict[Code, tuple[str, str]] = {
    Code.OK: ("成功", "OK"),
    Code.NOT_INITIALIZED: ("控制軟體尚未初始化", "control software not initialised"),
    Code.ALREADY_INITIALIZED: ("控制軟體已初始化", "control software already initialised"),
    Code.NO_DEVICE: ("找不到有效的裝置名稱", "no valid device name found"),
    Code.PROD_TEST_MIXED: ("正式卡與測試卡混用", "production and test cards mixed"),
    Code.QRCODE_EXPIRED: ("QRCode 已逾時", "QR code expired"),
    Code.QRCODE_MISSING: ("缺少 QRCode", "QR code missing"),
    Code.QRCODE_REUSED: ("QRCode 已使用過", "QR code already used"),
    Code.QRCODE_TOKEN_EXPIRED: ("QRCode Token 已逾時", "QR code token expired"),
    Code.QRCODE_TOKEN_MISSING: ("缺少 QRCode Token", "QR code token missing"),
    Code.QRCODE_TOKEN_REUSED: ("QRCode Token 已使用過", "QR code token already used"),
    Code.NO_DEFAULT_READER: ("未設定預設 PC/SC 讀卡機", "no default PC/SC reader"),
    Code.NO_READER: ("沒有使用中的 PC/SC 讀卡機", "no PC/SC reader in use"),
    Code.NO_CARD: ("未插入卡片，請重新插卡", "no card inserted (re-insert the card)"),
    Code.APP_SWITCH_FAILED: ("卡片應用程式切換失敗", "card application switch failed"),
    Code.PCSC_OTHER: ("PC/SC 其他錯誤", "other PC/SC error"),
    Code.SAM_MODE1: ("安全模組狀態錯誤，需為狀態 1", "SAM must be in state 1 (present)"),
    Code.SAM_MODE2: ("安全模組尚未驗證，需為狀態 2", "SAM must be verified (state 2)"),
    Code.SAM_CONTRACT_OVER: ("醫事機構合約已過期", "the institution's contract period is over"),
    Code.SAM_SUSPENDED: ("醫事機構停約中", "the institution is suspended"),
    Code.SAM_CANCELLED: ("安全模組已註銷", "the SAM is cancelled"),
    Code.HPC_MODE1: ("醫事人員卡狀態錯誤，需為狀態 1", "HPC must be in state 1"),
    Code.HPC_MODE2: ("醫事人員卡狀態錯誤，需為狀態 2", "HPC must be in state 2 (inserted, SAM verified)"),
    Code.HPC_MODE3: ("請插入醫事人員卡並驗證 PIN", "insert the HPC and verify its PIN (state 3)"),
    Code.HPC_UNSUPPORTED: ("醫事人員卡不支援此功能", "the HPC does not support this function"),
    Code.HPC_PIN_FAILED: ("醫事人員卡 PIN 驗證失敗", "HPC PIN verification failed"),
    Code.HCA_SIGNATURE: ("醫事人員憑證簽章檢核失敗", "HCA signature check failed"),
    Code.HCA_TIMEOUT: ("醫事人員憑證簽章逾時", "HCA signing timed out"),
    Code.HCA_CERT_VALIDITY: ("憑證不在有效期間內", "certificate not within its validity period"),
    Code.HCA_CERT_UNTRUSTED: ("找不到信任的上層憑證", "no trusted parent certificate"),
    Code.HCA_CERT_REVOKED: ("憑證已廢止", "certificate revoked"),
    Code.HC_MODE1: ("健保卡狀態錯誤，需為狀態 1", "HC must be in state 1"),
    Code.HC_MODE2: ("健保卡狀態錯誤，需為狀態 2", "HC must be ready (state 2)"),
    Code.HC_MODE3: ("健保卡狀態錯誤，需為狀態 3", "HC must be in state 3"),
    Code.HC_NO_PIN: ("實體健保卡未設定 PIN", "the physical HC has no PIN set"),
    Code.HC_PIN_NOT_VERIFIED: ("健保卡 PIN 尚未驗證", "HC PIN not verified"),
    Code.HC_DISABLE_PIN_FAILED: ("停用健保卡 PIN 失敗", "disabling the HC PIN failed"),
    Code.HC_PIN_ALREADY_VERIFIED: ("健保卡 PIN 已驗證", "HC PIN already verified"),
    Code.HC_PIN_FAILED: ("驗證健保卡 PIN 失敗", "HC PIN verification failed"),
    Code.HC_PHYSICAL_ONLY: ("此功能僅限實體健保卡", "this function is for physical HCs only"),
    Code.VHC_TOKEN: ("虛擬健保卡憑證錯誤", "virtual HC token invalid"),
    Code.VHC_FORMAT: ("虛擬健保卡 QRCode 格式錯誤", "virtual HC QR code format error"),
    Code.VHC_SIGNATURE: ("虛擬健保卡 QRCode 簽章錯誤", "virtual HC QR code signature invalid"),
    Code.VHC_TOKEN_COUNT: ("Token 已超過驗證次數", "token verification count exceeded"),
    Code.VHC_NO_PIN_FUNCS: ("虛擬健保卡無法呼叫 PIN 相關功能", "a virtual HC cannot call PIN functions"),
    Code.VHC_ONLY: ("此功能僅限虛擬健保卡", "this function is for virtual HCs only"),
    Code.NO_READER_BY_NAME: ("找不到該名稱的 PC/SC 讀卡機", "no PC/SC reader by that name"),
    Code.DEFAULT_READER_DETECT: ("自動偵測預設讀卡機失敗", "default reader auto-detection failed"),
    Code.CLOUD_SAM_FORMAT: ("雲端安全模組檔案格式錯誤", "cloud SAM file format error"),
    Code.CLOUD_SAM_NOT_FOUND: ("找不到雲端安全模組", "cloud SAM ID not found"),
    Code.DC_CONNECTION: ("中心端連線錯誤", "data-centre connection error"),
    Code.DC_HTTP: ("中心端 HTTP 錯誤", "data-centre HTTP error"),
    Code.PARAM_FORMAT: ("參數格式錯誤", "parameter format error"),
    Code.PARAM_MISSING: ("缺少必要參數", "required parameter missing"),
    Code.PARAM_VALUE: ("參數值錯誤", "parameter value invalid"),
    Code.HCA_ELSEWHERE: ("醫事人員憑證已登出或已於其他主機登入", "HCA logged out or logged in on another host"),
    Code.DC_UNDEFINED: ("中心端未定義錯誤", "undefined data-centre error"),
    Code.SIGNATURE_INVALID: ("簽章驗證錯誤", "signature verification failed"),
    Code.HC_PIN_REQUIRED: ("健保卡 PIN 尚未驗證", "HC PIN not verified"),
    Code.CARD_CANCELLED: ("健保卡已註銷", "the card is cancelled"),
    Code.TREATMENT_NUMBER_FAILED: ("就醫識別碼編碼失敗", "treatment number could not be issued"),
    Code.RESTRICTED: ("受限制", "restricted"),
    Code.NEWBORN_RULE: ("新生兒註記錯誤", "newborn mark rule violated"),
    Code.REGISTRATION_NOT_FOUND: ("查無掛號資料", "registration entry not found"),
    Code.DIAGNOSIS_WRITTEN: ("已寫入診斷碼", "diagnosis already written"),
    Code.ICD_ENCODE_FAILED: ("ICD10 押碼失敗", "ICD-10 encoding failed"),
    Code.OTHER_INSTITUTION: ("非同一醫事機構", "a different institution"),
    Code.NO_VISITS_LEFT: ("可用次數為零", "no available visits left"),
    Code.PREVENT_RULE: ("預防保健資料錯誤", "preventive-care rule violated"),
    Code.PREGNANT_RULE: ("產前檢查資料錯誤", "prenatal-check rule violated"),
    Code.ROLLBACK_TOO_LATE: ("退掛已超過 24 小時", "rollback more than 24 hours after the visit"),
    Code.ROLLBACK_NUMERIC_ONLY: ("就醫類別為數值才可退掛", "only visits of a numeric visit type (就醫類別) can be rolled back"),
    Code.ROLLBACK_DONE: ("已退掛", "already rolled back"),
    Code.NOT_INSURED: ("非在保狀態", "not insured"),
    Code.DUPLICATE_UPLOAD: ("重複上傳", "duplicate upload"),
    Code.ACCESS_TOKEN_INVALID: ("Access Token 錯誤", "access token invalid"),
    Code.ACCESS_TOKEN_EXPIRED: ("Access Token 已逾期", "access token expired"),
    Code.VHC_QR_USED: ("虛擬健保卡 QRCode 已使用過", "virtual HC QR code already used"),
    Code.SIGNATURE_REUSED: ("簽章已使用過", "signature already used"),
    Code.CLOUD_SAM_OTHER_HOST: ("雲端安全模組檔案已於其他電腦或使用者使用，請重新匯入", "cloud SAM file sealed for another machine or user: import it again on this one"),
    Code.MISSING_KEY: ("缺少必要鍵值", "missing key"),
    Code.ICD_NOT_ENCODABLE: ("診斷碼不可押碼", "diagnosis code cannot be encoded"),
    Code.CARD_UPDATE_NEEDED: ("卡片已逾有效期限，請更新卡片內容", "card expired: update the card (HcContent/Update) and retry"),
    Code.UPLOAD_SIGNATURE_EXPIRED: ("簽章已逾 1 小時", "upload signature older than one hour"),
    Code.WORKSTATION_OFFLINE: ("工作站離線", "workstation offline"),
    Code.WORKSTATION_TIMEOUT: ("工作站未在時限內回應", "workstation did not answer in time"),
    Code.UPSTREAM_UNAVAILABLE: ("健保署雲端無法連線", "NHI cloud unavailable"),
    Code.OUTCOME_UNKNOWN: ("寫入結果未知，請以冪等鍵查詢", "write outcome unknown; reconcile with the idempotency key"),
    Code.UNAUTHORIZED: ("未授權", "unauthorised"),
    Code.NOT_FOUND: ("找不到資源", "not found"),
    Code.UNSUPPORTED: ("不支援此功能", "not supported"),
    Code.RATE_LIMITED: ("請求過於頻繁，請稍後再試", "too many requests for this hospital; retry later"),
    Code.IN_PROGRESS: ("請求已受理，處理中；請以相同冪等鍵重試取得結果", "accepted and still in progress; retry with the same Idempotency-Key for the answer"),
    Code.SESSION_LIMIT: ("裝置工作階段數已達上限", "too many device sessions (per device, hospital or agent)"),
    Code.SESSION_GONE: ("裝置工作階段不存在、已關閉或已逾時", "no such device session: closed, expired or never opened"),
    Code.FORBIDDEN: ("拒絕存取", "forbidden"),
    Code.METHOD_NOT_ALLOWED: ("不支援此 HTTP 方法", "method not allowed on this route"),
    Code.BODY_TOO_LARGE: ("請求內容過大", "request body too large"),
    Code.NOT_JSON: ("請求內容不是 JSON 物件", "request body is not a JSON object"),
    Code.NOT_READY: ("閘道器尚未就緒，請稍後重試", "gateway not ready yet (it has not heard its agents yet); retry shortly"),
    Code.COMPONENT_FAILED: ("讀卡機控制軟體回應異常", "the official 6.0 component gave an answer that is not a 6.0 answer"),
    Code.INTERNAL: ("內部錯誤", "internal error"),
}

# The HTTP status of every answer, by its code; a code not listed is answered HTTP 200
# (see the module docstring for why). Nothing else in the project picks an HTTP status
# for a coded answer.
HTTP_STATUS: dict[Code, int] = {
    Code.IN_PROGRESS: 202,
    Code.NOT_JSON: 400,
    Code.UNAUTHORIZED: 401,
    Code.FORBIDDEN: 403,
    Code.NOT_FOUND: 404,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.BODY_TOO_LARGE: 413,
    Code.INTERNAL: 500,
}

_HTTP_STATUS_BY_NUMBER = {int(c): s for c, s in HTTP_STATUS.items()}  # the cloud's own codes are no Code (and are 200)


def http_status(code: int) -> int:
    """The HTTP status an answer with this ``statusCode`` goes out with."""
    return _HTTP_STATUS_BY_NUMBER.get(int(code), 200)


def code_for_http_status(status: int) -> Code:
    """The refusal code for an HTTP error raised below the handlers (aiohttp's own 404, 405, 413...)."""
    return next((c for c, s in HTTP_STATUS.items() if s == status and s >= 400), Code.NOT_JSON)


def message(code: int) -> tuple[str, str]:
    """(Chinese, English) for a code; unknown codes get a generic pair."""
    try:
        return MESSAGES[Code(code)]
    except ValueError:
        return ("未定義錯誤", "undefined error")


class StatusError(Exception):
    """A failure with a 6.0 ``statusCode``; rendered as a JSON error at the HTTP boundary.

    ``detail`` is extra English context; it must never hold a PIN, key or full ID number.
    """

    def __init__(self, code: int, detail: str | None = None, **extra: object) -> None:
        self.code = int(code)
        self.detail = detail
        self.extra = extra
        super().__init__(f"{self.code}: {detail or message(self.code)[1]}")

    @property
    def http_status(self) -> int:
        return http_status(self.code)

    def body(self) -> dict[str, object]:
        zh, en = message(self.code)
        out: dict[str, object] = {"statusCode": self.code, "message": zh, "messageEn": en}
        if self.detail:
            out["detail"] = self.detail
        out.update(self.extra)
        return out
