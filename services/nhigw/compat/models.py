"""Bodies of the compat service (VHC SDK 2.x routes and ``POST /cshis/{function}``).

Parameter names are the SDK's and ``cshis.h``'s own (public facts 2.1 and 5):
``QRCodeString``, ``cTreatItem``, ``cBabyTreat``, ``cTreatAfterCheck``, ``pUnTreatDate``,
``pDateTime``, ``pPatientID``, ``pPatientBirthDate``, ``pDataWrite``, ``iWriteCount``.
Requests allow extra keys: real HIS code sends more than it must.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class UploadQrCodeRequest(_In):
    QRCodeString: str = Field(min_length=1)


class TokenUploadRequest(_In):
    """The transfer code (雲端憑證) another workstation exported; ``QRCodeString`` is accepted as an alias."""

    token: str | None = None
    QRCodeString: str | None = None


class SeqNumberRequest(_In):
    cTreatItem: str
    cBabyTreat: str = " "
    cTreatAfterCheck: str = "1"


class UnGetSeqNumberRequest(_In):
    pUnTreatDate: str


class WriteRequest(_In):
    pDateTime: str
    pPatientID: str
    pPatientBirthDate: str = ""
    pDataWrite: str


class MultiWriteRequest(WriteRequest):
    iWriteCount: int = 1


class CardTypeRequest(_In):
    CardType: int = 3


class LegacyRequest(_In):
    """``POST /cshis/{function}``: the function's parameters by their legacy names (all optional in the schema)."""


class VhcResponse(BaseModel):
    """What the VHC SDK answers: ``ERRORCODE`` (legacy code) and ``pBuffer`` (the legacy layout, Big5 decoded).

    Json variants carry the named fields in ``pBuffer`` instead of the layout.
    """

    model_config = ConfigDict(extra="allow")

    ERRORCODE: int
    pBuffer: str | dict[str, Any] | list[str] = ""
    pBufferDocID: str | None = None
    message: str | None = None
    messageEn: str | None = None
    statusCode: int | None = None


class LegacyResponse(BaseModel):
    """``POST /cshis/{function}``: legacy code, the buffer as Big5-decoded text and as hex bytes, out-parameters."""

    model_config = ConfigDict(extra="allow")

    ERRORCODE: int
    message: str
    pBuffer: str = ""
    pBufferHex: str = ""
    iBufferLen: int = 0
    value: int | None = None
    data: dict[str, Any] | None = None
    statusCode: int | None = None
    detail: str | None = None


class UnsupportedResponse(BaseModel):
    ERRORCODE: int
    statusCode: int
    message: str
    messageEn: str
    function: str
