"""The virtual-card SDK 2.x routes (``http://localhost:3033/VHC/...`` → ``https://localhost:5067/VHC/...``).

As the seed says, an HIS moves from the SDK to the compatibility component by switching
to HTTPS and port 5067; the paths and parameters stay (public facts 5). Each route is a
csHis function (``VHChisGetBasicData`` = ``hisGetBasicData`` …) answered as the SDK
answers: ``{"ERRORCODE": n, "pBuffer": "..."}`` with ``pBuffer`` in the legacy layout.

Variants of the mapping table (choices, the SDK's own spec is not public):
- plain: UTF-8 JSON, ``pBuffer`` the legacy layout decoded from Big5 to text;
- ``...Big5``: the same JSON body encoded in Big5 (``charset=big5``), for HIS code that
  reads the body as Big5;
- ``...Json``: ``pBuffer`` is an object of the named 6.0 fields instead of the layout;
- ``...JsonBig5``: the ``Json`` body encoded in Big5;
- ``...10`` (ICD-10 forms): 6.0 is ICD-10 only, so they equal the plain routes.

Routes match case-insensitively (the SDK is ASP.NET). Every route the seed lists as not
supported answers HTTP 501 with legacy code 9005 and the seed's reason, never a 404.
A legacy error code is an ordinary SDK answer: HTTP 200 with that ``ERRORCODE``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from nhigw.compat import models as cm


@dataclass(frozen=True)
class VhcRoute:
    path: str
    function: str  # csHis function name, or a special handler: "@uploadqrcode", "@cleanqrcode", "@export", "@import", "@version"
    summary: str
    request: type[BaseModel] | None = None
    variant: str = "layout"  # layout | big5 | json | jsonbig5

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]


@dataclass(frozen=True)
class VhcUnsupported:
    path: str
    summary: str
    reason: str
    reason_en: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]


def _variants(base: str, function: str, summary: str, kinds: tuple[str, ...]) -> list[VhcRoute]:
    suffix = {"layout": "", "big5": "Big5", "json": "Json", "jsonbig5": "JsonBig5"}
    return [VhcRoute(f"/VHC/{base}{suffix[k]}", function, f"{summary} ({k})", None, k) for k in kinds]


ALL_VARIANTS = ("layout", "big5", "json", "jsonbig5")

ROUTES: list[VhcRoute] = [
    VhcRoute("/QRCodeReader/uploadqrcode", "@uploadqrcode", "接收 QRCode String 取病患健保卡資料 (6.0: Verification/VirtualHc)", cm.UploadQrCodeRequest),
    VhcRoute("/QRCodeReader/GetVHCQRCodeCloudToken", "@export", "取得虛擬健保卡 QRCode 雲端憑證 (6.0: GET VirtualHc/Import; this workstation's virtual HC is logged out)"),
    VhcRoute("/QRCodeReader/UploadVHCQRCodeCloudToken", "@import", "上傳虛擬健保卡 QRCode 雲端憑證 (6.0: POST VirtualHc/Import {token})", cm.TokenUploadRequest),
    VhcRoute("/QRCodeReader/VHCcleanQRCode", "@cleanqrcode", "清除虛擬健保卡 QRCode (6.0: hc Logout)"),
    VhcRoute("/utility/getSDKVersion", "@version", "取得虛擬健保卡 SDK 版本資訊 (6.0: common Version)"),
    VhcRoute("/VHC/VHCcsOpenCom", "csOpenCom", "開啟讀卡機連結埠 (6.0: Initial)"),
    VhcRoute("/VHC/VHCcsCloseCom", "csCloseCom", "關閉讀卡機連結埠"),
    *_variants("VHChisGetBasicData", "hisGetBasicData", "讀取不需個人 PIN 碼資料 (72 bytes)", ALL_VARIANTS),
    *_variants("VHChisGetRegisterBasic", "hisGetRegisterBasic", "掛號或報到時讀取基本資料 (78 bytes)", ALL_VARIANTS),
    VhcRoute("/VHC/VHChisGetSeqNumber256N1", "hisGetSeqNumber256N1", "取得就醫序號新版-就醫識別碼 (316 bytes)", cm.SeqNumberRequest),
    VhcRoute("/VHC/VHCcsUnGetSeqNumber", "csUnGetSeqNumber", "取消就醫序號 (退掛)", cm.UnGetSeqNumberRequest),
    VhcRoute("/VHC/VHChisWriteTreatmentCode", "hisWriteTreatmentCode", "就醫診療資料寫入作業", cm.WriteRequest),
    VhcRoute("/VHC/VHChisWriteTreatmentCode10", "hisWriteTreatmentCode", "就醫診療資料寫入作業 (ICD-10)", cm.WriteRequest),
    VhcRoute("/VHC/VHChisWriteTreatmentFee", "hisWriteTreatmentFee", "就醫費用資料寫入作業", cm.WriteRequest),
    VhcRoute("/VHC/VHChisWritePrescriptionSign", "hisWritePrescriptionSign", "處方箋寫入作業-回傳簽章 (總量 7 碼: 5 整數 + 2 小數)", cm.WriteRequest),
    VhcRoute("/VHC/VHChisWriteMultiPrescriptSign", "hisWriteMultiPrescriptSign", "多筆處方箋寫入作業-回傳簽章 (40 bytes each)", cm.MultiWriteRequest),
    VhcRoute("/VHC/VHChisGetCriticalIllness", "hisGetCriticalIllness", "讀取重大傷病註記資料 (138 bytes)"),
    VhcRoute("/VHC/VHChisGetCriticalIllness10", "hisGetCriticalIllness", "讀取重大傷病註記資料 (ICD-10)"),
    VhcRoute("/VHC/VHChisGetTreatmentNoNeedHPC", "hisGetTreatmentNoNeedHPC", "讀取就醫資料不需 HPC 卡的部分 (498 bytes)"),
    VhcRoute("/VHC/VHChisGetTreatmentNeedHPC", "hisGetTreatmentNeedHPC", "讀取就醫資料需要 HPC 卡的部份 (540 bytes)"),
    VhcRoute("/VHC/VHChisGetTreatmentNeedHPC10", "hisGetTreatmentNeedHPC", "讀取就醫資料需要 HPC 卡的部份 (ICD-10)"),
    VhcRoute("/VHC/VHChisGetOrganDonate", "hisGetOrganDonate", "讀取同意器官捐贈及安寧緩和醫療註記 (6.0 fields)", None, "json"),
    VhcRoute("/VHC/VHChisGetLastSeqNum", "hisGetLastSeqNum", "讀取最近一次就醫序號 (6.0 fields)", None, "json"),
    VhcRoute("/VHC/VHChisGetCardStatus", "hisGetCardStatus", "讀取卡片狀態 (pBuffer: the HC state)", cm.CardTypeRequest),
    VhcRoute("/VHC/VHChisGetQuickInsurance", "hisQuickInsurance", "在保狀態查核 (6.0 fields)", None, "json"),
    VhcRoute("/VHC/VHCcsGetDateTime", "csGetDateTime", "讀取讀卡機日期時間 (13 bytes ROC)"),
    VhcRoute("/VHC/VHCcsGetCardNo", "csGetCardNo", "讀取卡片號碼 (12 bytes)", cm.CardTypeRequest),
]

_OFFLINE = ("不支援離線作業。", "offline operation is not supported")
_TELE = (
    "視訊診療架構已調整，且為雲端函式非虛擬健保卡SDK之API。請改用 /api/v1/TeleMedicine/RequestToken 與 /api/v1/TeleMedicine/ResponseToken。",
    "the telemedicine flow changed and this is a cloud function, not an SDK API; use /api/v1/TeleMedicine/RequestToken and ResponseToken",
)
_UI = (
    "原虛擬健保卡SDK為地端元件，可提供UI介面，因已改為Web API，無法提供UI介面。此API主要是提供初期開發測試，為提高HIS系統整合度，"
    "建議由HIS系統取得虛擬健保卡QRCode字串後，再呼叫API（uploadqrcode）上傳QRCode至相容性元件（虛擬健保卡）。",
    "the SDK was a local component with a UI; a Web API cannot show one. Read the QR code in the HIS and post it to /QRCodeReader/uploadqrcode",
)
_TOKEN = (
    "此API僅用於取得可呼叫以下Web API之Token：讀取同意器官捐贈及安寧緩和醫療註記、在保狀態查核、讀取重大傷病註記資料、取得就醫識別碼。請改使用讀卡機控制軟體6.0的Web API。",
    "this token only served the organ-donation, insurance-check, critical-illness and treatment-number cloud APIs; use the 6.0 Web APIs instead",
)

UNSUPPORTED: list[VhcUnsupported] = [
    VhcUnsupported("/Offline/VHCOfflineGetUniqueSeqNum", "離線取就醫識別唯一碼", *_OFFLINE),
    VhcUnsupported("/Offline/VHCOfflineWritePrescription", "離線處方箋寫入作業", *_OFFLINE),
    VhcUnsupported("/Offline/exportOfflineMData", "離線資料匯出", *_OFFLINE),
    VhcUnsupported("/Offline/getNetworkStatus", "取得網路狀態 (離線作業)", *_OFFLINE),
    VhcUnsupported("/Offline/clearOfflineMData", "清除離線資料", *_OFFLINE),
    VhcUnsupported("/VHC/GetVHCTeleMedicineReqCode", "以取得之授權憑證(Token)及民眾識別資訊(證號)取請求序號", *_TELE),
    VhcUnsupported("/VHC/getQRCodeByVHCTLMRReqCode", "醫事機構視訊門診以請求序號取得民眾虛擬健保卡 QRCode", *_TELE),
    VhcUnsupported("/QRCodeReader/openqrcodepage", "開啟虛擬健保卡 QRCode 讀取畫面", *_UI),
    VhcUnsupported("/QRCodeReader/openqrpage", "開啟虛擬健保卡 QRCode 讀取畫面", *_UI),
    VhcUnsupported("/VHC/VHChisGetVhcCloudToken", "取得查詢雲端資料憑證(Token)", *_TOKEN),
]

BY_NAME: dict[str, VhcRoute] = {r.name.lower(): r for r in ROUTES}
UNSUPPORTED_BY_NAME: dict[str, VhcUnsupported] = {u.name.lower(): u for u in UNSUPPORTED}
PREFIXES = ("VHC", "QRCodeReader", "Offline", "utility")
