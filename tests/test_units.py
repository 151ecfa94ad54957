"""Pure logic, tested with vectors: masking, the basic-profile parser, the APDU parser, sealing."""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs

from nhigw.agent.cards import parse_hc_basic, sw_tries_left
from nhigw.common.logging import mask_event, mask_id, mask_text
from nhigw.common.secretbox import SecretBox, SecretBoxError
from nhigw.vcard.cards import Apdu


def test_mask_event_hides_secrets_ids_and_signatures() -> None:
    ev = mask_event(None, "info", {"event": "x", "pin": "12345678", "newPin": "1111", "puk": "87654321", "detail": "card of Z299999929 read", "signature": "A" * 344, "nested": {"idNo": "C123456789", "token": "qr"}})
    text = repr(ev)
    for secret in ("12345678", "1111", "87654321", "Z299999929", "C123456789", "A" * 20, "qr'"):
        assert secret not in text
    assert ev["detail"] == "card of Z29*****29 read"
    assert ev["signature"].startswith("AAAAAAAA")


def test_mask_id_leaves_other_text_alone() -> None:
    assert mask_id("hospital 3501200000 sam 001000000103") == "hospital 3501200000 sam 001000000103"
    assert mask_id("A234567890,B123456780") == "A23*****90,B12*****80"


def test_mask_text_cuts_signatures_quoted_in_a_text_and_keeps_hashes() -> None:
    sig = "B6SNebfxdMEey2T9BpZm0LS1NW8SsCjW90QN0eYT6M5LE5VWC9PLNI70B/+x" * 6
    body = json.dumps({"signature": sig, "hcIdNo": "Z299999929", "clientRandom": "OvIMSq3fDYQ="})
    assert mask_text(f"refused {body}") == 'refused {"signature": "B6SNebfx…", "hcIdNo": "Z29*****29", "clientRandom": "OvIMSq3f…"}'
    assert mask_text(json.dumps({"body": body})) == json.dumps({"body": '{"signature": "B6SNebfx…", "hcIdNo": "Z29*****29", "clientRandom": "OvIMSq3f…"}'}, ensure_ascii=False)
    assert mask_text(f"QueuedJob(body={body!r})").count("B6SNebfx…") == 1
    assert mask_text(f"sSignature={sig} next") == "sSignature=B6SNebfx… next"
    assert mask_text(f"raw {sig} end") == "raw B6SNebfx… end"  # unnamed, still cut: longer than any hash we log
    sha1, sha256 = "eb06ba95b0c5fbea4790e0aae4b943c3632a8a8a", "ab" * 32
    assert mask_text(f"answerKey {sha1} digest {sha256}") == f"answerKey {sha1} digest {sha256}"
    assert mask_text("signature: short") == "signature: short"


def test_masking_is_applied_by_the_configured_logger() -> None:
    import structlog

    with capture_logs(processors=[mask_event]) as logs:
        structlog.get_logger("t").info("verify", pin="12345678")
    assert logs[0]["pin"] == "***"


def test_parse_hc_basic_public_layout() -> None:
    raw = b"000073898382" + "歐陽測試".encode("big5").ljust(20, b"\x00") + b"A234567890" + b"1000101" + b"M" + b"1100801"
    b = parse_hc_basic(raw)
    assert (b.cardSn, b.name, b.idNo, b.birthday, b.sex, b.dateIssue) == ("000073898382", "歐陽測試", "A234567890", "1000101", "M", "1100801")
    with pytest.raises(ValueError):
        parse_hc_basic(raw[:56])


@pytest.mark.parametrize(("sw", "tries"), [(0x63C2, 2), (0x63C0, 0), (0x6983, 0), (0x9000, None), (0x6A88, None)])
def test_sw_tries_left(sw: int, tries: int | None) -> None:
    assert sw_tries_left(sw) == tries


@pytest.mark.parametrize(
    ("hexapdu", "data", "le"),
    [
        ("00CA11000200 00", b"\x00\x00", None),  # the public READ: Lc=2, data 00 00, no Le
        ("00CA1100020000 00", b"\x00\x00", 256),  # with Le 00 appended
        ("0084000008", b"", 8),
        ("00A4040010D1580000010000000000000000001100", bytes.fromhex("D1580000010000000000000000001100"), None),
    ],
)
def test_apdu_parser(hexapdu: str, data: bytes, le: int | None) -> None:
    a = Apdu(bytes.fromhex(hexapdu.replace(" ", "")))
    assert (a.data, a.le) == (data, le)


def test_apdu_parser_rejects_bad_lengths() -> None:
    with pytest.raises(ValueError):
        Apdu(b"\x00\xa4\x04")
    with pytest.raises(ValueError):
        Apdu(bytes.fromhex("00A4040010D158"))


def test_secretbox_round_trip_and_binding(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NHIGW_MASTER_KEY", raising=False)
    box = SecretBox(tmp_path / "a", "cloud-sam")
    box.write(tmp_path / "f.sealed", b"secret key material")
    assert b"secret" not in (tmp_path / "f.sealed").read_bytes()
    assert box.read(tmp_path / "f.sealed") == b"secret key material"
    other_user = SecretBox(tmp_path / "b", "cloud-sam")  # another data dir = another machine/user key
    with pytest.raises(SecretBoxError):
        other_user.read(tmp_path / "f.sealed")
    other_purpose = SecretBox(tmp_path / "a", "vcard-keys")
    with pytest.raises(SecretBoxError):
        other_purpose.read(tmp_path / "f.sealed")


def test_every_card_kind_has_its_applet_session_virtual_card_and_legacy_codes() -> None:
    """A kind added to ``CardKind`` and forgotten in one of the places a kind needs fails here."""
    from nhigw.agent.cards import SESSIONS
    from nhigw.compat.errors import NO_CARD_BY_KIND, WRONG_CARD_BY_KIND
    from nhigw.contracts.apdu import AID
    from nhigw.contracts.models import CardKind
    from nhigw.vcard.cards import HcCard, HpcCard, SamCard

    kinds = set(CardKind)
    assert set(AID) == set(SESSIONS) == set(NO_CARD_BY_KIND) == set(WRONG_CARD_BY_KIND) == kinds
    assert len(set(AID.values())) == len(kinds)  # one applet per kind: SELECT tells them apart
    assert all(cls.kind == kind and cls.aid == AID[kind] for kind, cls in SESSIONS.items())
    assert list(SESSIONS)[0] == CardKind.HC  # tried first: it changes most
    assert {c.kind: c.aid for c in (HcCard, SamCard, HpcCard)} == AID


def test_status_words_are_the_iso_numbers() -> None:
    from nhigw.contracts.apdu import SW

    assert SW.NOT_FOUND == 0x6A82 and SW.NOT_FOUND.raw == b"\x6a\x82"
    assert sw_tries_left(SW.BLOCKED) == 0 and sw_tries_left(SW.OK) is None


def test_sdk_transport_keeps_its_former_name() -> None:
    from nhigw.client import transport

    assert transport.Transport is transport.ApiTransport and transport.ApiTransport.__name__ == "ApiTransport"
