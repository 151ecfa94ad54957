"""The NHI cloud business routes (seed mapping table, column 業務邏輯端) in one table.

For each route: which signature a 6.0 HIS sends (``kind``: SAM, HC, HPC, HPC+HC), which
signatures the cloud accepts (``accepts``; ``kind`` alone unless listed), with which
``serviceType``, and whether it is a read (retry-safe) or a write (never repeated
silently). The gateway's one-call mode signs with ``kind``, the simulator accepts any
of ``accepts``, and compat signs with ``legacy_kind`` (the 5.0 functions it stands in
for needed the doctor's card, and their buffers return the doctor's ID).

Writes (public facts 3.3 / 3.3a, production HIS code): ``Treatment/WriteCodeFee`` and
``Prescription/Write`` are posted with the HC signature (``Signature/Hc`` serviceType 02,
no ``hpcId`` / ``hpcIdNo``) even while the doctor's card is verified, so their ``kind`` is
HC and the cloud also takes the three-card signature. ``Treatment/WriteCode`` is the same
write without the fees (legacy 1.16 is the subset of 1.47): treated the same. The other
serviceType 02 writes that name a doctor's act (preventive care, prenatal checks,
inoculation, allergies) have no public client evidence: they keep the three-card signature
only, the project's reading of the seed, until production code shows otherwise. The rest were checked against 3.3: ``HcContent/Update`` HC 04;
sequence / treatment numbers and rollback HC 03; ``TreatmentNumber/NoCard`` and uploads SAM
(03 / 30).
"""

from __future__ import annotations

from dataclasses import dataclass

from nhigw.contracts.models import SignatureKind as K


@dataclass(frozen=True)
class Route:
    path: str  # after ``base``
    kind: K
    serviceType: str
    write: bool
    summary: str
    supported: bool = True
    also: tuple[K, ...] = ()  # other signatures the cloud accepts
    base: str = "/api/v1/"

    @property
    def url(self) -> str:
        """The path on its host: ``/api/v1/BasicData/Register``, ``/V2000/VNHI_Upload``."""
        return self.base + self.path

    @property
    def accepts(self) -> tuple[K, ...]:
        return (self.kind, *self.also)

    @property
    def legacy_kind(self) -> K:
        """What compat signs with: the three-card signature where the cloud takes it (csHis needed the HPC)."""
        return K.HPCHC if K.HPCHC in self.accepts else self.kind


_ROUTES = [
    Route("BasicData/Query", K.HC, "01", False, "讀取不需個人 PIN 碼之基本資料"),
    Route("BasicData/Register", K.HC, "01", False, "掛號或報到時讀取基本資料"),
    Route("BasicData/Register2", K.HC, "01", False, "掛號或報到時讀取基本資料 (卡片有效期限、可用次數)"),
    Route("PreventData/Query", K.HC, "01", False, "預防保健掛號作業"),
    Route("PreventData/Write", K.HPCHC, "02", True, "預防保健資料寫入作業"),
    Route("PregnantData/Query", K.HC, "01", False, "孕婦產前檢查掛號作業"),
    Route("PregnantData/Write", K.HPCHC, "02", True, "寫入產前檢查資料"),
    Route("PregnantData/Delete", K.HPCHC, "02", True, "清除產前檢查資料"),
    Route("Inoculate/Query", K.HC, "01", False, "讀取預防接種資料"),
    Route("Inoculate/Write", K.HPCHC, "02", True, "預防接種資料寫入作業"),
    Route("EmergentTel/Query", K.HC, "01", False, "讀取緊急聯絡電話資料"),
    Route("EmergentTel/Write", K.HC, "02", True, "緊急聯絡電話資料寫入作業"),
    Route("HcContent/Update", K.HC, "04", True, "健保 IC 卡卡片內容更新作業"),
    Route("NewBorn/Write", K.HC, "02", True, "新生兒註記寫入作業"),
    Route("OrganDonate/Write", K.HC, "02", True, "同意器官捐贈及安寧緩和醫療註記寫入作業 (不支援)", supported=False),
    Route("AllergicMedicines/Query", K.HPCHC, "01", False, "讀取就醫資料-過敏藥物"),
    Route("AllergicMedicines/Write", K.HPCHC, "02", True, "過敏藥物寫入作業"),
    Route("AllergicMedicines/WriteByIndex", K.HPCHC, "02", True, "過敏藥物寫入指定欄位作業"),
    Route("Treatment/NoNeedHPC", K.HC, "01", False, "讀取就醫資料不需 HCA 卡的部分"),
    Route("Treatment/NeedHPC", K.HPCHC, "01", False, "讀取就醫資料需要 HCA 卡的部份"),
    Route("Treatment/WriteCode", K.HC, "02", True, "就醫診療資料寫入作業", also=(K.HPCHC,)),
    Route("Treatment/WriteCodeFee", K.HC, "02", True, "就醫診療資料及費用寫入作業", also=(K.HPCHC,)),
    Route("Treatment/WriteFee", K.HC, "02", True, "就醫費用資料寫入作業"),
    Route("CumulativeData/Query", K.HC, "01", False, "讀取就醫累計資料"),
    Route("CumulativeFee/Query", K.HC, "01", False, "讀取醫療費用總累計"),
    Route("Prescription/Query", K.HPCHC, "01", False, "讀取處方箋作業"),
    Route("Prescription/LongQuery", K.HPCHC, "01", False, "讀取就醫資料-長期處方箋"),
    Route("Prescription/HveQuery", K.HPCHC, "01", False, "讀取就醫資料-重要醫令"),
    Route("Prescription/Write", K.HC, "02", True, "處方箋寫入作業", also=(K.HPCHC,)),
    Route("OrganDonate/Query", K.HC, "01", False, "讀取同意器官捐贈及安寧緩和醫療註記"),
    Route("SequalNumber/Last", K.HC, "01", False, "讀取最近一次就醫序號"),
    Route("SeqNumber/Next", K.HC, "03", True, "取得就醫序號新版-就醫識別碼"),
    Route("SequelNumber/Next", K.HC, "03", True, "取得就醫序號新版-就醫識別碼 (real HIS spelling)"),
    Route("SequelNumber/Rollback", K.HC, "03", True, "退掛 (取消就醫序號)"),
    Route("CriticalIllness/Query", K.HPCHC, "01", False, "讀取重大傷病註記資料"),
    Route("Insurance/Quick", K.HC, "01", False, "在保狀態查核"),
    Route("TreatmentNumber/Card", K.HC, "03", True, "單獨取得就醫識別碼"),
    Route("TreatmentNumber/NoCard", K.SAM, "03", True, "異常時取得就醫識別碼"),
    Route("UploadData/Upload", K.SAM, "30", True, "資料上傳"),
    Route("Icd/Encode", K.SAM, "01", False, "進行疾病診斷碼押碼"),
    Route("Icd/Decode", K.SAM, "01", False, "進行疾病診斷碼解押碼"),
    Route("TeleMedicine/RequestToken", K.SAM, "01", False, "視訊診療取得 accessToken"),
    Route("TeleMedicine/ResponseToken", K.SAM, "01", False, "視訊診療以 accessToken 取得虛擬健保卡 QRCode"),
]

ROUTES: dict[str, Route] = {r.path.lower(): r for r in _ROUTES}

# IC-data upload in 6.0 mode (public facts 3.3): not a business route. Another host
# (medvpndti.nhi.gov.tw), its own body (``sSamId``, ``sHospId``, ``sClientRandom``,
# ``sSignature`` + ``sType``, ``sPatData``, ``sUploadDT``) and its own answer (``RtnCode``,
# ``Opcode``); signed by the SAM with serviceType 30. A write.
VNHI_UPLOAD = Route("VNHI_Upload", K.SAM, "30", True, "IC 資料上傳 (6.0 模式)", base="/V2000/")


def lookup(path: str) -> Route | None:
    """Route for ``BasicData/Register`` or ``/api/v1/BasicData/Register`` (case-insensitive, as ASP.NET routes are),
    and ``/V2000/VNHI_Upload``."""
    p = path.strip("/")
    if p.lower().startswith("api/v1/"):
        p = p[7:]
    elif p.lower() == VNHI_UPLOAD.url.strip("/").lower():
        return VNHI_UPLOAD
    return ROUTES.get(p.lower())
