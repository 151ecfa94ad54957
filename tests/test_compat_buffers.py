"""Legacy csHis buffers against byte vectors built here, by hand, from the public-facts offsets (0-based).

Each vector starts as spaces and gets its fields written at the documented offsets with
Python's own ``big5`` codec, so a wrong width, offset, padding or encoding in
``nhigw.compat.buffers`` shows as a byte difference. Also: the error-code table.
"""

from __future__ import annotations

import pytest

from nhigw.compat import buffers as B
from nhigw.compat.errors import FROM_60, LEGACY_MESSAGES, legacy_code
from nhigw.contracts.codes import Code


def vec(length: int, *fields: tuple[int, bytes]) -> bytes:
    buf = bytearray(b" " * length)
    for offset, data in fields:
        buf[offset : offset + len(data)] = data
    return bytes(buf)


OUYANG = {  # 4-character name, 3-digit ROC years (100 = 2011, 110 = 2021)
    "cardSn": "000073898382",
    "name": "歐陽測試",
    "idCardNum": "A234567890",
    "birthday": "1000101",
    "sex": "M",
    "dateIssue": "1100801",
    "cancelTermination": "1",
    "emergentTel": "0912345678",
}


def test_basic_data_72_bytes_four_character_name_and_three_digit_roc_year() -> None:
    expected = vec(
        72,
        (0, b"000073898382"),
        (12, "歐陽測試".encode("big5")),  # 8 bytes, then 12 spaces up to byte 31
        (32, b"A234567890"),
        (42, b"1000101"),
        (49, b"M"),
        (50, b"1100801"),
        (57, b"1"),
        (58, b"0912345678"),
    )
    out = B.basic_data(OUYANG)
    assert len(out) == 72
    assert out == expected
    assert out[12:32].decode("big5").rstrip() == "歐陽測試"  # the 20-byte field keeps all four characters
    assert B.decode_basic_data(out)["name"] == "歐陽測試"


def test_basic_data_empty_optional_fields_are_spaces() -> None:
    d = {**OUYANG, "emergentTel": "", "cancelTermination": ""}
    out = B.basic_data(d)
    assert out[57:72] == b" " * 15
    assert len(out) == 72


def test_register_basic_78_bytes() -> None:
    d = {**OUYANG, "insurerCode": "", "insurerId": "3", "cardValidity": "1201231", "treatmentCounter": "04", "newbornBirthday": "", "newbornBaby": ""}
    expected = vec(
        78,
        (0, b"000073898382"),
        (12, "歐陽測試".encode("big5")),
        (32, b"A234567890"),
        (42, b"1000101"),
        (49, b"M"),
        (50, b"1100801"),
        (57, b"1"),
        # 58-59 insurer code: empty -> spaces
        (60, b"3"),
        (61, b"1201231"),
        (68, b"04"),
        # 70-76 newborn birth date, 77 newborn order: empty -> spaces
    )
    assert B.register_basic(d) == expected
    with_newborn = B.register_basic({**d, "newbornBirthday": "1130505", "newbornBaby": "2"})
    assert with_newborn[70:77] == b"1130505" and with_newborn[77:78] == b"2"
    assert B.decode_register_basic(with_newborn)["newbornBirthday"] == "1130505"


def test_register_basic2_9_bytes() -> None:
    assert B.register_basic2({"cardValidity": "0991231", "treatmentCounter": "06"}) == b"0991231" + b"06"


SEQ = {
    "treatmentDateTime": "1130615093000",
    "sequenceNumber": "W001",
    "hospitalId": "3501200000",
    "signature": "S" * 200,
    "samId": "001000000103",
    "isSameDay": False,
    "treatmentNumber": "35012000001130615001",
}


def test_seq_number_256_is_296_bytes_and_n1_is_316() -> None:
    # 1-based doc positions: date-time 1-13, number 14-17, hospital 18-27, signature 28-283, SAM 284-295, same day 296
    expected = vec(296, (0, b"1130615093000"), (13, b"W001"), (17, b"3501200000"), (27, b"S" * 200), (283, b"001000000103"), (295, b"N"))
    assert B.seq_number_256(SEQ) == expected
    n1 = B.seq_number_256({**SEQ, "isSameDay": True}, n1=True)
    assert len(n1) == 316
    assert n1[295:296] == b"Y"
    assert n1[296:316] == b"35012000001130615001"
    assert B.decode_seq_number(n1)["sequenceNumber"] == "W001"


def test_critical_illness_138_bytes_six_slots() -> None:
    items = [{"ciCode": "E10.9", "validityStart": "1100301", "validityEnd": "1150228"}, {"ciCode": "C50.911", "validityStart": "1120115", "validityEnd": "1170114"}]
    expected = vec(138, (0, b"E10.9"), (9, b"1100301"), (16, b"1150228"), (23, b"C50.911"), (32, b"1120115"), (39, b"1170114"))
    assert B.critical_illness(items) == expected


def test_treatment_no_need_hpc_498_bytes() -> None:
    ill = [{"validityStart": "1100301", "validityEnd": "1150228"}]
    t = [{"treatmentItem": "01", "babyTreatment": "", "treatDateTime": "1130301100000", "afterCheck": "1", "hospitalVisit": "W001", "hospitalId": "3501200000", "outpatientFee": 830, "costFee": 0, "inpatientFee": 0, "inpatient30Fee": 0, "inpatient180Fee": 0}]
    r = 84  # first 69-byte record
    expected = vec(
        498,
        (0, b"1100301"),
        (7, b"1150228"),
        (r, b"01"),
        (r + 3, b"1130301100000"),
        (r + 16, b"1"),
        (r + 17, b"W001"),
        (r + 21, b"3501200000"),
        (r + 31, b"830"),
        (r + 39, b"0"),
        (r + 47, b"0"),
        (r + 55, b"0"),
        (r + 62, b"0"),
    )
    assert B.treatment_no_need_hpc(ill, t) == expected


def test_treatment_need_hpc_540_bytes() -> None:
    t = [{"treatDateTime": "1130301100000", "mainCode": "E119", "subCode1": "I10"}]
    r = 138
    expected = vec(540, (0, b"N18.6"), (9, b"1090101"), (16, b"1181231"), (r, b"1130301100000"), (r + 14, b"E119"), (r + 23, b"I10"))
    assert B.treatment_need_hpc([{"ciCode": "N18.6", "validityStart": "1090101", "validityEnd": "1181231"}], t) == expected


def test_a_name_too_long_is_cut_at_a_character_boundary() -> None:
    assert B.fit("測" * 11, 20) == ("測" * 10).encode("big5")
    assert B.fit("A" + "測" * 10, 20) == b"A" + ("測" * 9).encode("big5") + b" "  # never half a character


def test_upload_result_50_bytes() -> None:
    out = B.upload_result({"samId": "001000000103", "hospitalId": "3501200000", "uploadDateTime": "20240615093000", "receiveDateTime": "20240615093001"})
    assert out == b"001000000103" + b"3501200000" + b"20240615093000" + b"20240615093001"


# ------------------------------------------------------------------ input buffers


def test_treatment_code_gapped_icd10_layout() -> None:
    # 1-based: 補卡註記 @1, main @3-9, sub1 @12-18, sub2 @21-27, sub3 @30-36, sub4 @39-45, sub5 @48-54
    raw = vec(54, (0, b"1"), (2, b"E119"), (11, b"I10"), (20, b"J069"))
    assert B.parse_treatment_code(raw.decode() + "\x00") == {
        "afterCheck": "1", "mainCode": "E119", "subCode1": "I10", "subCode2": "J069", "subCode3": "", "subCode4": "", "subCode5": "",
    }


def test_treatment_code_packed_vhc_layout() -> None:
    text = "2" + "E119".ljust(7) + "I10".ljust(7) + " " * 28
    assert B.parse_treatment_code(text) == {"afterCheck": "2", "mainCode": "E119", "subCode1": "I10", "subCode2": "", "subCode3": "", "subCode4": "", "subCode5": ""}


def test_treatment_fee_38_bytes_left_or_zero_padded() -> None:
    text = "450".ljust(8) + "00000050" + " " * 8 + "0000000" + " " * 7
    assert B.parse_treatment_fee(text) == {"outpatientFee": 450, "costFee": 50, "inpatientFee": 0, "inpatient30Fee": 0, "inpatient180Fee": 0}
    with pytest.raises(ValueError):
        B.parse_treatment_fee("45O".ljust(38))


def prescription(total: str, code: str = "AC12345100", usage: str = "TID") -> str:
    # 1-based: date-time 1-13, type 14, code 15-26, position 27-32, usage 33-50, days 51-52, total 53-59, delivery 60-61
    raw = vec(61, (0, b"1130615093000"), (13, b"1"), (14, code.encode()), (32, usage.encode()), (50, b"03"), (52, total.encode()), (59, b"01"))
    return raw.decode()


def test_prescription_record_61_bytes_and_the_seven_digit_total_quantity() -> None:
    (rec,) = B.parse_prescriptions(prescription("1234525"))
    assert rec.as_json() == {
        "treatmentDateTime": "1130615093000", "treatmentItem": "1", "treatmentItemCode": "AC12345100", "treatmentPosition": "",
        "usage": "TID", "days": "03", "totalQuantity": "12345.25", "deliveryNotes": "01",
    }
    two = B.parse_prescriptions(prescription("0000900") + prescription("0002800", "BC23456100", "QD"), 2)
    assert [r.treatmentItemCode for r in two] == ["AC12345100", "BC23456100"]


@pytest.mark.parametrize(("given", "sent"), [("1234525", "12345.25"), ("900", "9.00"), ("0000001", "0.01"), ("00012.5", "12.50"), ("12345.25", "12345.25"), ("", "0.00")])
def test_total_quantity_buffer_digits_become_the_6_0_decimal(given: str, sent: str) -> None:
    """Buffers carry 5 integer + 2 decimal digits; 6.0 JSON a decimal string (public facts 3.3a)."""
    assert B.total_quantity(given) == sent


@pytest.mark.parametrize("bad", ["12a", "100000.00", "-1"])
def test_total_quantity_rejects_what_does_not_fit(bad: str) -> None:
    with pytest.raises(ValueError):
        B.total_quantity(bad)


# ------------------------------------------------------------------ the error-code table


def test_every_row_of_the_table_names_a_legacy_code_and_every_6_0_code_resolves() -> None:
    for code, legacy in FROM_60.items():
        for card in ("sam", "hc", "hpc"):
            assert legacy_code(code, card) in LEGACY_MESSAGES, (code, legacy, card)
    for c in Code:  # codes added later without a row still give a legacy code (9005) rather than a crash
        assert legacy_code(c) in LEGACY_MESSAGES
    mapped_now = {1000, 1001, 1102, 1103, 1301, 1402, 1410, 1511, 1514, 1520, 1700, 3100, 3203, 3209, 3245, 9400, 9403}
    assert mapped_now <= set(FROM_60)


@pytest.mark.parametrize(
    ("code", "card", "legacy"),
    [
        (0, None, 0),
        (1001, None, 0),  # already initialised: success, as HIS code treats it
        (1000, None, 4000),
        (1102, "sam", 4012),
        (1102, "hc", 4013),
        (1102, "hpc", 4014),
        (1103, "hpc", 4034),
        (1301, "hc", 4050),  # SAM not verified with the DC
        (1402, "hpc", 4042),  # HPC PIN not verified
        (1410, "hpc", 5102),
        (1514, "hc", 5102),
        (1511, "hc", 5105),
        (1700, None, 4061),
        (3100, None, 9020),
        (3203, None, 5002),
        (3209, None, 0),  # diagnosis already written: success
        (3213, None, 5001),
        (3245, None, 9020),
        (5001, None, 5001),  # a legacy-range code from the cloud passes through
        (1234, None, 9005),  # unknown: function cannot run
    ],
)
def test_error_code_mapping(code: int, card: str | None, legacy: int) -> None:
    assert legacy_code(code, card) == legacy


@pytest.mark.parametrize(("detail", "legacy"), [("no HPC inserted", 4014), ("the SAM was removed", 4012), ("the HC was removed", 4013), ("", 4013)])
def test_no_card_names_the_card_the_agent_names(detail: str, legacy: int) -> None:
    from nhigw.compat.cshis import _card_named

    assert legacy_code(1102, _card_named({"statusCode": 1102, "detail": detail}, "hc")) == legacy


def test_big5_text_inside_an_input_buffer_keeps_the_byte_layout() -> None:
    usage = "飯後".encode("big5")  # 2 characters, 4 bytes of the 18-byte 用法 field
    raw = vec(61, (0, b"1130615093000"), (13, b"1"), (14, b"AC12345100"), (32, usage), (50, b"07"), (52, b"0001400"), (59, b"02"))
    (rec,) = B.parse_prescriptions(raw.decode("big5"))  # as it arrives over HTTP: Unicode text
    assert (rec.usage, rec.days, rec.totalQuantity, rec.deliveryNotes) == ("飯後", "07", "14.00", "02")
