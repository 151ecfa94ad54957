"""Fixed-width Big5 buffers of the legacy csHis API (public facts 2.2), built and parsed as pure functions.

Every width below is in **bytes of Big5**, 0-based offsets in the comments. Rules:

- text fields are left-aligned and padded with spaces, as the NHI documentation says
  for its buffers ("各欄位資料往左靠，不足處補空白"); an empty or missing optional field is
  all spaces; a field too long is cut at a character boundary (a double-byte Big5
  character is never split);
- names are encoded as Big5 (``big5hkscs``, a superset the agent also reads cards with);
  a 4-character name is 8 bytes and fits the 20-byte field;
- ROC dates stay as given (``yyyMMdd``, 3-digit years such as 092 and 113);
- lists (critical illnesses, treatment records) have 6 slots; unused slots are spaces.

Input buffers (``pDataWrite``) arrive as Unicode text over HTTP; they are encoded to
Big5 first and sliced by byte offsets, so a Big5 text inside a field keeps the layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

ENCODING = "big5hkscs"

SEQ_NUMBER_256N1_LEN = 316
PRESCRIPTION_RECORD_LEN = 61
PRESCRIPTION_SIGNATURE_LEN = 40
SLOTS = 6


def encode(text: str) -> bytes:
    return text.encode(ENCODING, errors="replace")


def decode(raw: bytes) -> str:
    return raw.decode(ENCODING, errors="replace")


def fit(value: Any, width: int) -> bytes:
    """``value`` as Big5, left-aligned, space-padded to ``width`` bytes; cut at a character boundary."""
    text = "" if value is None else str(value)
    if isinstance(value, bool):
        text = "Y" if value else "N"
    out = b""
    for ch in text:
        b = encode(ch)
        if len(out) + len(b) > width:
            break
        out += b
    return out + b" " * (width - len(out))


def pack(fields: Iterable[tuple[Any, int]]) -> bytes:
    return b"".join(fit(v, w) for v, w in fields)


def _g(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        v = d.get(k)
        if v not in (None, ""):
            return v
    return ""


# ------------------------------------------------------------------ output buffers (cloud JSON -> legacy bytes)


def basic_data(d: Mapping[str, Any]) -> bytes:
    """hisGetBasicData, 72 bytes: card no 0-11 · name 12-31 · ID 32-41 · birth 42-48 · sex 49 · issue 50-56 · cancel 57 · tel 58-71."""
    return pack(
        [
            (_g(d, "cardSn", "cardId"), 12),
            (_g(d, "name"), 20),
            (_g(d, "idCardNum", "idNo"), 10),
            (_g(d, "birthday"), 7),
            (_g(d, "sex"), 1),
            (_g(d, "dateIssue", "dataIssue"), 7),
            (_g(d, "cancelTermination"), 1),
            (_g(d, "emergentTel", "tel"), 14),
        ]
    )


def register_basic(d: Mapping[str, Any]) -> bytes:
    """hisGetRegisterBasic, 78 bytes: the first 58 of basic data, then insurer code 58-59 · identity mark 60 ·
    card validity 61-67 · available count 68-69 · newborn birth date 70-76 · newborn birth order 77."""
    return basic_data(d)[:58] + pack(
        [
            (_g(d, "insurerCode"), 2),
            (_g(d, "insurerId", "identityStatus"), 1),
            (_g(d, "cardValidity"), 7),
            (_g(d, "treatmentCounter"), 2),
            (_g(d, "newbornBirthday"), 7),
            (_g(d, "newbornBaby"), 1),
        ]
    )


def register_basic2(d: Mapping[str, Any]) -> bytes:
    """hisGetRegisterBasic2, 9 bytes: card validity 0-6 · available count 7-8."""
    return pack([(_g(d, "cardValidity"), 7), (_g(d, "treatmentCounter"), 2)])


def seq_number_256(d: Mapping[str, Any], *, n1: bool = False) -> bytes:
    """hisGetSeqNumber256, 296 bytes: date-time 0-12 · sequence number 13-16 · hospital 17-26 · signature 27-282 ·
    SAM ID 283-294 · same day 295 ('Y'/'N'); the N1 form adds the treatment number (就醫識別碼) 296-315 (316 bytes).

    The 256-byte signature field held a 1024-bit RSA signature as 256 hex digits. A longer
    signature (this project's simulator signs with RSA-2048: 344 base64 characters) keeps
    its first 256 characters here; callers get the whole one from the JSON (``data``)."""
    same = d.get("isSameDay")
    same_flag = ("Y" if same else "N") if isinstance(same, bool) else str(same or "N")[:1]
    fields: list[tuple[Any, int]] = [
        (_g(d, "treatmentDateTime"), 13),
        (_g(d, "sequenceNumber"), 4),
        (_g(d, "hospitalId"), 10),
        (_g(d, "signature"), 256),
        (_g(d, "samId"), 12),
        (same_flag, 1),
    ]
    if n1:
        fields.append((_g(d, "treatmentNumber"), 20))
    return pack(fields)


def critical_illness(items: Sequence[Mapping[str, Any]]) -> bytes:
    """hisGetCriticalIllness, 138 bytes: 6 × (code 9 · validity start 7 · validity end 7)."""
    out = b""
    for i in range(SLOTS):
        c = items[i] if i < len(items) else {}
        out += pack([(_g(c, "ciCode"), 9), (_g(c, "validityStart"), 7), (_g(c, "validityEnd"), 7)])
    return out


def treatment_no_need_hpc(illnesses: Sequence[Mapping[str, Any]], treatments: Sequence[Mapping[str, Any]]) -> bytes:
    """hisGetTreatmentNoNeedHPC, 498 bytes: 6 × (start 7 · end 7) = 84, then 6 × 69-byte records:
    item 2 · newborn 1 · date-time 13 · after-check 1 · sequence 4 · hospital 10 · outpatient fee 8 ·
    outpatient co-payment 8 · inpatient fee 8 · inpatient co-payment ≤30/180 d 7 · ≥31/181 d 7."""
    out = b""
    for i in range(SLOTS):
        c = illnesses[i] if i < len(illnesses) else {}
        out += pack([(_g(c, "validityStart"), 7), (_g(c, "validityEnd"), 7)])
    for i in range(SLOTS):
        t = treatments[i] if i < len(treatments) else {}
        out += pack(
            [
                (_g(t, "treatmentItem"), 2),
                (_g(t, "newbornTreatment", "babyTreatment"), 1),
                (_g(t, "treatDateTime", "treatmentDateTime"), 13),
                (_g(t, "afterCheck"), 1),
                (_g(t, "hospitalVisit", "sequenceNumber"), 4),
                (_g(t, "hospitalId"), 10),
                (_g(t, "outpatientFee"), 8),
                (_g(t, "costFee"), 8),
                (_g(t, "inpatientFee"), 8),
                (_g(t, "inpatient30Fee"), 7),
                (_g(t, "inpatient180Fee"), 7),
            ]
        )
    return out


def treatment_need_hpc(illnesses: Sequence[Mapping[str, Any]], treatments: Sequence[Mapping[str, Any]]) -> bytes:
    """hisGetTreatmentNeedHPC, 540 bytes: 6 × (code 9 · start 7 · end 7) = 138, then 6 × 67-byte records:
    date-time 13 · gap 1 · main dx 7 · (gap 2 · dx 7) × 5 · gap 1."""
    out = critical_illness(illnesses)
    for i in range(SLOTS):
        t = treatments[i] if i < len(treatments) else {}
        rec: list[tuple[Any, int]] = [(_g(t, "treatDateTime", "treatmentDateTime"), 13), ("", 1), (_g(t, "mainCode"), 7)]
        for k in range(1, 6):
            rec += [("", 2), (_g(t, f"subCode{k}"), 7)]
        rec.append(("", 1))
        out += pack(rec)
    return out


def upload_result(d: Mapping[str, Any]) -> bytes:
    """csUploadData out, 50 bytes: SAM ID 12 · hospital 10 · upload time 14 · receive time 14 (yyyyMMddHHmmss)."""
    return pack([(_g(d, "samId"), 12), (_g(d, "hospitalId"), 10), (_g(d, "uploadDateTime"), 14), (_g(d, "receiveDateTime"), 14)])


def signatures_40(items: Sequence[str]) -> bytes:
    """Prescription signatures: 40 characters each, concatenated (MultiPrescriptSign splits every 40)."""
    return b"".join(fit(s, PRESCRIPTION_SIGNATURE_LEN) for s in items)


# ------------------------------------------------------------------ input buffers (legacy pDataWrite -> 6.0 JSON fields)


def _cut(raw: bytes, start: int, width: int) -> str:
    return decode(raw[start : start + width]).strip()


def _raw(text: str | bytes) -> bytes:
    raw = text if isinstance(text, bytes) else encode(text)
    return raw.split(b"\x00", 1)[0]


def parse_treatment_code(text: str | bytes) -> dict[str, str]:
    """hisWriteTreatmentCode ``pDataWrite`` -> afterCheck, mainCode, subCode1..5.

    Two layouts are in use (public facts 2.2, a documented conflict): the ICD-10-CM
    layout of the cshis docs (1-based: 補卡註記 @1, main @3-9, subs @12-18, 21-27, 30-36,
    39-45, 48-54) and the packed one the VHC SDK path sends (補卡註記 then six 7-byte codes).
    A diagnosis code never starts with a space, so byte 1 (0-based) tells them apart:
    a space there is the gapped layout.
    """
    raw = _raw(text)
    out = {"afterCheck": _cut(raw, 0, 1)}
    gapped = len(raw) > 1 and not chr(raw[1]).isalnum()
    starts = [2, 11, 20, 29, 38, 47] if gapped else [1, 8, 15, 22, 29, 36]
    names = ["mainCode", "subCode1", "subCode2", "subCode3", "subCode4", "subCode5"]
    for name, s in zip(names, starts, strict=True):
        out[name] = _cut(raw, s, 7)
    return out


def _fee(raw: bytes, start: int, width: int, name: str) -> int:
    v = _cut(raw, start, width)
    if not v:
        return 0
    if not v.isdigit():
        raise ValueError(f"{name} {v!r} is not a whole number")
    return int(v)


def parse_treatment_fee(text: str | bytes) -> dict[str, int]:
    """hisWriteTreatmentFee ``pDataWrite``, 38 bytes: 8 · 8 · 8 · 7 · 7 (blank = 0; left- or zero-padded)."""
    raw = _raw(text)
    return {
        "outpatientFee": _fee(raw, 0, 8, "門診醫療費用"),
        "costFee": _fee(raw, 8, 8, "門診部分負擔"),
        "inpatientFee": _fee(raw, 16, 8, "住院醫療費用"),
        "inpatient30Fee": _fee(raw, 24, 7, "住院部分負擔(短)"),
        "inpatient180Fee": _fee(raw, 31, 7, "住院部分負擔(長)"),
    }


def total_quantity(field: str) -> str:
    """The 7-byte 總量 of a csHis / VHC SDK buffer (5 integer + 2 decimal digits, "1234525" = 12345.25, the
    seed's rule) as 6.0 JSON sends it: a decimal string with 2 decimals ("12345.25", public facts 3.3a).

    A buffer value with a decimal point (pyMedical formats "00000.0") is read as that number
    ("12.5" -> "12.50"); blank is "0.00"; anything else, or more than 99999.99, is a ``ValueError``.
    """
    f = field.strip()
    if not f:
        return "0.00"
    if f.isdigit() and len(f) <= 7:
        return f"{Decimal(int(f)) / 100:.2f}"
    try:
        hundredths = (Decimal(f) * 100).to_integral_exact()
    except (InvalidOperation, ArithmeticError) as exc:
        raise ValueError(f"總量 {field!r} is not 7 digits (5 integer + 2 decimal)") from exc
    if hundredths < 0 or hundredths > 9_999_999:
        raise ValueError(f"總量 {field!r} is out of range (0 .. 99999.99)")
    return f"{Decimal(int(hundredths)) / 100:.2f}"


@dataclass(frozen=True)
class PrescriptionRecord:
    treatmentDateTime: str
    treatmentItem: str  # 醫令類別: 1 non-long-term drug, 2 long-term drug, 3 treatment, 4 special material
    treatmentItemCode: str
    treatmentPosition: str
    usage: str
    days: str
    totalQuantity: str
    deliveryNotes: str

    def as_json(self) -> dict[str, str]:
        return dict(self.__dict__)


def parse_prescriptions(text: str | bytes, count: int | None = None) -> list[PrescriptionRecord]:
    """Prescription records, 61 bytes each: date-time 0-12 · type 13 · code 14-25 · position 26-31 · usage 32-49 ·
    days 50-51 · total quantity 52-58 · delivery note 59-60."""
    raw = _raw(text)
    n = count if count is not None else max(1, (len(raw) + PRESCRIPTION_RECORD_LEN - 1) // PRESCRIPTION_RECORD_LEN)
    out = []
    for i in range(n):
        r = raw[i * PRESCRIPTION_RECORD_LEN : (i + 1) * PRESCRIPTION_RECORD_LEN]
        if len(r.rstrip()) < 14:
            raise ValueError(f"prescription record {i + 1} is {len(r)} bytes, expected {PRESCRIPTION_RECORD_LEN}")
        out.append(
            PrescriptionRecord(
                treatmentDateTime=_cut(r, 0, 13),
                treatmentItem=_cut(r, 13, 1),
                treatmentItemCode=_cut(r, 14, 12),
                treatmentPosition=_cut(r, 26, 6),
                usage=_cut(r, 32, 18),
                days=_cut(r, 50, 2),
                totalQuantity=total_quantity(decode(r[52:59])),
                deliveryNotes=_cut(r, 59, 2),
            )
        )
    return out


# ------------------------------------------------------------------ decoders (for HIS code and tests that read buffers back)


def decode_basic_data(buf: bytes) -> dict[str, str]:
    return {
        "cardSn": _cut(buf, 0, 12),
        "name": _cut(buf, 12, 20),
        "idNo": _cut(buf, 32, 10),
        "birthday": _cut(buf, 42, 7),
        "sex": _cut(buf, 49, 1),
        "dateIssue": _cut(buf, 50, 7),
        "cancelTermination": _cut(buf, 57, 1),
        "emergentTel": _cut(buf, 58, 14),
    }


def decode_register_basic(buf: bytes) -> dict[str, str]:
    out = decode_basic_data(buf[:58] + b" " * 14)
    out.pop("emergentTel")
    out.update(
        insurerCode=_cut(buf, 58, 2),
        insurerId=_cut(buf, 60, 1),
        cardValidity=_cut(buf, 61, 7),
        treatmentCounter=_cut(buf, 68, 2),
        newbornBirthday=_cut(buf, 70, 7),
        newbornBaby=_cut(buf, 77, 1),
    )
    return out


def decode_seq_number(buf: bytes) -> dict[str, str]:
    out = {
        "treatmentDateTime": _cut(buf, 0, 13),
        "sequenceNumber": _cut(buf, 13, 4),
        "hospitalId": _cut(buf, 17, 10),
        "signature": _cut(buf, 27, 256),
        "samId": _cut(buf, 283, 12),
        "isSameDay": _cut(buf, 295, 1),
    }
    if len(buf) >= SEQ_NUMBER_256N1_LEN:
        out["treatmentNumber"] = _cut(buf, 296, 20)
    return out
