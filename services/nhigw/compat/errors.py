"""Legacy csHis error codes (public facts 2.3) and the ONE table mapping 6.0 codes onto them.

``LEGACY_MESSAGES`` is the official CS 3.3.10 ``ErrorCode.txt`` list plus the later codes
real HIS code knows (5174, 6019, 9005, 9039, 9042, 9043, 9045, 9056). ``FROM_60`` maps
every 6.0 / gateway code this project emits (``nhigw.contracts.codes.Code``) and the
documented 6.0 business codes (3xxx) to the legacy code an old HIS understands; a
test checks that every ``Code`` member has a row and every target exists.

Context: 6.0 says "no card" (1102) or "application switch failed" (1103) without
saying which card; the legacy codes do (4012 SAM / 4013 HC / 4014 HPC, 4032 / 4033 /
4034). ``legacy_code(code, card=...)`` takes the card the legacy function works on.

Choices (the sources are silent): success-like 6.0 answers map to 0 (1001 already
initialised, 1513 PIN already verified, 3209 diagnosis already written — pyMedical
treats 1001 and 3209 as success); a code with no legacy meaning maps to 9005
(function cannot run); compat failing to reach the agent is 4000 (reader timeout),
failing to reach the NHI cloud is 4061 (network down).
"""

from __future__ import annotations

from nhigw.contracts.codes import Code
from nhigw.contracts.models import CardKind

LEGACY_MESSAGES: dict[int, str] = {
    0: "成功",
    4000: "讀卡機timeout",
    4012: "未置入安全模組卡",
    4013: "未置入健保IC卡",
    4014: "未置入醫事人員卡",
    4029: "IC卡權限不足",
    4032: "所插入非安全模組卡",
    4033: "所置入非健保IC卡",
    4034: "所置入非醫事人員卡",
    4042: "醫事人員卡PIN尚未認證成功",
    4050: "安全模組尚未與IDC認證",
    4051: "安全模組與IDC認證失敗",
    4061: "網路不通",
    4071: "健保IC卡與IDC認證失敗",
    5001: "就醫可用次數不足",
    5002: "卡片已註銷",
    5003: "卡片已過有限期限",
    5004: "非新生兒一個月內就診",
    5005: "讀卡機的日期時間讀取失敗",
    5006: "讀取安全模組內的「醫療院所代碼」失敗",
    5007: "寫入一組新的「就醫資料登錄」失敗",
    5008: "安全模組簽章失敗",
    5009: "無寫入就醫相關紀錄之權限",
    5010: "同一天看診兩科(含)以上",
    5012: "此人未在保或欠費",
    5015: "「門診處方箋」讀取失敗",
    5016: "「長期處方箋」讀取失敗",
    5017: "「重要醫令」讀取失敗",
    5020: "要寫入的資料和健保IC卡不是屬於同一人",
    5022: "找不到「就醫資料登錄」中的該組資料",
    5023: "「就醫資料登錄」寫入失敗",
    5028: "HC卡「就醫費用紀錄」寫入失敗",
    5033: "「門診處方箋」寫入失敗",
    5051: "新生兒註記寫入失敗",
    5052: "有新生兒出生日期，但無新生兒胞胎註記資料",
    5056: "讀取醫事人員ID失敗",
    5057: "過敏藥物寫入失敗",
    5061: "同意器官捐贈及安寧緩和醫療註記寫入失敗",
    5062: "放棄同意器官捐贈及安寧緩和醫療註記輸入",
    5067: "安全模組卡「醫療院所代碼」讀取失敗",
    5068: "預防保健資料寫入失敗",
    5071: "緊急聯絡電話寫失敗",
    5078: "產前檢查資料寫入失敗",
    5079: "性別不符，健保IC卡記載為男性",
    5081: "最近24小時內同院所未曾就醫，故不可取消就醫",
    5082: "最近24小時內同院所未曾執行產檢服務紀錄，故不可取消產檢",
    5083: "最近6次就醫不含就醫類別AC，不可單獨寫入預防保健或產檢紀錄",
    5084: "最近24小時內同院所未曾執行保健服務項目紀錄，故不可取消保健服務",
    5087: "刪除「孕婦產前檢查(限女性)」全部11 組的資料失敗",
    5093: "預防接種資料寫入失敗",
    5102: "使用者所輸入之pin 值，與卡上之pin值不合",
    5105: "原PIN碼尚未通過認證",
    5107: "使用者輸入兩次新PIN 值，兩次PIN 值不合",
    5108: "密碼變更失敗",
    5109: "密碼輸入過程按『取消』鍵",
    5110: "變更健保IC卡密碼時, 請移除醫事人員卡",
    5111: "停用失敗，且健保IC卡之Pin 碼輸入功能仍啟用",
    5122: "被鎖住的醫事人員卡仍未解開",
    5130: "更新健保IC卡內容失敗",
    5141: "未置入醫事人員卡, 僅能讀取重大傷病有效起訖日期",
    5150: "卡片中無此筆就醫記錄",
    5151: "就醫類別為數值才可退掛",
    5152: "醫療院所不同，不可退掛",
    5153: "本筆就醫記錄已經退掛過，不可重覆退掛",
    5154: "退掛日期不符合規定",
    5160: "就醫可用次數不合理",
    5174: "取就醫識別碼失敗",
    6005: "安全模組卡的外部認證失敗",
    6006: "IDC的外部認證失敗",
    6007: "安全模組卡的內部認證失敗",
    6008: "寫入讀卡機日期時間失敗",
    6014: "IDC 驗證簽章失敗",
    6015: "檔案大小不合或檔案傳輸失敗",
    6016: "記憶體空間不足",
    6017: "權限不足無法開啟檔案或找不到檔案",
    6018: "傳入參數錯誤",
    6019: "醫事人員卡PIN為空值",
    9001: "送至IDC Message Header 檢核不符",
    9002: "送至IDC語法不符",
    9003: "與IDC作業逾時",
    9004: "IDC異常無法Service",
    9005: "此功能無法執行",
    9010: "IDC無法驗證該卡片",
    9011: "IDC驗證健保IC卡失敗",
    9012: "IDC無該卡片資料",
    9013: "無效的安全模組卡",
    9014: "IDC對安全模組卡認證失敗",
    9015: "安全模組卡對IDC認證失敗",
    9020: "IDC驗章錯誤",
    9039: "PIN碼錯誤",
    9042: "PIN碼已過期",
    9043: "PIN碼已鎖定",
    9045: "憑證已廢止",
    9060: "安全模組卡遭停約處罰",
    9061: "安全模組卡不在有效期內",
    9062: "安全模組卡合約逾期或尚未生效",
    9070: "上傳資料大小不符無法接收檔案",
    9071: "上傳日期與 Data Center 不一致",
    9081: "卡片可用次數大於3次, 未達可更新標準",
    9082: "此卡已被註銷, 無法進行卡片更新作業",
    9083: "不在保",
    9084: "停保中",
    9085: "已退保",
    9086: "個人欠費",
    9092: "其他",
    9100: "藥師藥局無權限",
    9129: "持卡人於非限制院所就診",
    9130: "醫事卡失效",
    9140: "醫事卡逾效期",
}

# Sentinels for the context-dependent codes.
_NO_CARD = -1
_WRONG_CARD = -2

NO_CARD_BY_KIND = {CardKind.SAM: 4012, CardKind.HC: 4013, CardKind.HPC: 4014}
WRONG_CARD_BY_KIND = {CardKind.SAM: 4032, CardKind.HC: 4033, CardKind.HPC: 4034}

UNSUPPORTED = 9005
AGENT_UNREACHABLE = 4000
CLOUD_UNREACHABLE = 4061
BAD_PARAMETER = 6018
NOT_SAME_PERSON = 5020
ROLLBACK_WRITTEN = 5154  # 退掛: the visit's treatment data are written

# THE table: 6.0 statusCode -> legacy error code.
FROM_60: dict[int, int] = {
    Code.OK: 0,
    Code.NOT_INITIALIZED: 4000,  # no csOpenCom: the legacy DLL times out on the closed port
    Code.ALREADY_INITIALIZED: 0,
    Code.NO_DEVICE: 4000,
    Code.PROD_TEST_MIXED: 9013,
    Code.NO_DEFAULT_READER: 4000,
    Code.NO_READER: 4000,
    Code.NO_CARD: _NO_CARD,
    Code.APP_SWITCH_FAILED: _WRONG_CARD,
    Code.PCSC_OTHER: 4000,
    Code.SAM_MODE1: 4012,
    Code.SAM_MODE2: 4050,
    Code.SAM_CONTRACT_OVER: 9062,
    Code.SAM_SUSPENDED: 9060,
    Code.SAM_CANCELLED: 9013,
    Code.HPC_MODE1: 4014,
    Code.HPC_MODE2: 4014,
    Code.HPC_MODE3: 4042,
    Code.HPC_UNSUPPORTED: 4029,
    Code.HPC_PIN_FAILED: 5102,
    Code.HCA_SIGNATURE: 6014,
    Code.HCA_TIMEOUT: 4000,
    Code.HCA_CERT_VALIDITY: 9140,
    Code.HCA_CERT_UNTRUSTED: 9130,
    Code.HCA_CERT_REVOKED: 9045,
    Code.HC_MODE1: 4013,
    Code.HC_MODE2: 4013,
    Code.HC_MODE3: 4013,
    Code.HC_NO_PIN: 9005,
    Code.HC_PIN_NOT_VERIFIED: 5105,
    Code.HC_DISABLE_PIN_FAILED: 5111,
    Code.HC_PIN_ALREADY_VERIFIED: 0,
    Code.HC_PIN_FAILED: 5102,
    Code.HC_PHYSICAL_ONLY: 9005,
    Code.VHC_TOKEN: 4071,
    Code.VHC_NO_PIN_FUNCS: 9005,
    Code.VHC_ONLY: 9005,
    Code.NO_READER_BY_NAME: 4000,
    Code.DEFAULT_READER_DETECT: 4000,
    Code.CLOUD_SAM_FORMAT: 9013,
    Code.CLOUD_SAM_NOT_FOUND: 4012,
    Code.DC_CONNECTION: 4061,
    Code.DC_HTTP: 9004,
    Code.PARAM_FORMAT: 6018,
    Code.PARAM_MISSING: 6018,
    Code.PARAM_VALUE: 6018,
    Code.DC_UNDEFINED: 9004,
    Code.SIGNATURE_INVALID: 9020,
    Code.HC_PIN_REQUIRED: 5105,
    Code.CARD_CANCELLED: 5002,
    Code.REGISTRATION_NOT_FOUND: 5022,
    Code.DIAGNOSIS_WRITTEN: 0,
    Code.SIGNATURE_REUSED: 9020,
    Code.MISSING_KEY: 6018,
    Code.WORKSTATION_OFFLINE: 4061,
    Code.WORKSTATION_TIMEOUT: 4000,
    Code.UPSTREAM_UNAVAILABLE: 9004,
    Code.OUTCOME_UNKNOWN: 9003,
    Code.UNAUTHORIZED: 4029,
    Code.NOT_FOUND: 9005,
    Code.UNSUPPORTED: 9005,
    Code.INTERNAL: 9005,
    # virtual HC QR codes and tokens (1018-1023, 1521-1525, 3244): the HC could not be authenticated
    1018: 4071, 1019: 4071, 1020: 4071, 1021: 4071, 1022: 4071, 1023: 4071,
    1521: 4071, 1522: 4071, 1525: 4071,  # token verified too often, or the card was transferred away
    3244: 4071,
    3204: 5174,  # treatment number could not be issued (取就醫識別碼失敗)
    3205: 4029,  # restricted
    3210: 6018,  # ICD-10 encoding failed
    3214: 5083,  # preventive-care rule
    3216: 5083,  # prenatal-check rule
    3219: 5154,  # only numeric visit types can be rolled back (a written visit is 3209: ROLLBACK_WRITTEN, by csUnGetSeqNumber)
    3220: 5153,  # already rolled back
    3236: 6015,  # duplicate upload
    3237: 9005, 3238: 9005,  # telemedicine access token
    8203: 6014,  # upload signature older than one hour
    9202: 9013,  # cloud SAM file sealed for another machine / user
    9407: 9004,  # rate limited: the centre cannot serve now
    9408: 9003,  # still in progress: outcome not known yet
    # 6.0 codes this project does not emit itself but the NHI cloud / other agents may (public facts 3.4)
    1099: 9005,  # API not offered offline
    1201: 4000,  # open COM port failed
    1202: 4000,  # physical reader operation failed
    1510: 9005,
    1707: 4042,  # HCA logged out / logged in elsewhere
    3201: 5003,  # past validity
    3202: 4029,  # not a medical institution
    3206: 5004,  # newborn rules
    3207: 5052,
    3211: 5152,  # different institution (rollback)
    3212: 4029,  # doctors only
    3213: 5001,  # zero available visits
    3218: 5154,  # rollback after 24 h
    3228: 5012, 3229: 5012, 3230: 5012, 3231: 5012, 3232: 5012, 3233: 5012, 3234: 5012, 3235: 5012,  # insurance status
    3400: 5130,  # card update failed
    3500: 9004,  # PKI service failed
    3501: 6018,  # diagnosis code not encodable
    9240: 4012,  # cloud-SAM console not running
}


def legacy_code(code: int, card: CardKind | None = None) -> int:
    """The legacy code for a 6.0 ``statusCode``; ``card`` (the function's card, default the HC) resolves 1102 / 1103.

    A code already in the legacy table (the NHI cloud answers some legacy-range codes,
    e.g. 5001) passes through; anything unknown is 9005.
    """
    code = int(code)
    out = FROM_60.get(code)
    if out is None:
        return code if code in LEGACY_MESSAGES else UNSUPPORTED
    if out == _NO_CARD:
        return NO_CARD_BY_KIND[card or CardKind.HC]
    if out == _WRONG_CARD:
        return WRONG_CARD_BY_KIND[card or CardKind.HC]
    return out


def legacy_message(code: int) -> str:
    return LEGACY_MESSAGES.get(int(code), "未定義錯誤")
