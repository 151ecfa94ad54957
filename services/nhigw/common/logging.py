"""structlog set-up: JSON lines, with a processor that masks personal data and secrets.

``mask_event`` is pure (event dict in, event dict out), so it is tested without I/O.
Rules: keys that name a secret (pin, puk, newPin, password, private key, token,
signature) are replaced; national ID numbers (one letter + 9 digits) anywhere in a
string value are cut to their first 3 and last 2 characters; signatures are cut to
8 characters, under their own key or written into a text (an exception's message, a
body quoted in it: ``"signature": "B6SN…"``), as is any long base64 run in a text.

An exception is rendered as a plain traceback (``format_exc_info``) *before* masking, so
its text is masked like any value; no renderer here prints a frame's locals (a job's
signed body, a card's fields), not even on a console.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEYS = {"pin", "puk", "newpin", "oldpin", "password", "private_key", "privatekey", "privatekeypem", "key_pem", "passphrase", "token", "accesstoken", "qrcodestring"}
# the upload host names the signature sSignature; a written prescription answers its items' signatures
TRUNCATE_KEYS = {"signature", "clientrandom", "ssignature", "sclientrandom", "signatureitems", "hexsignatureitems"}
ID_RE = re.compile(r"\b([A-Z])([0-9A-Z])(\d{6})(\d{2})\b")
# in a text: a truncated key's value, quoted or not (JSON, JSON inside JSON, a repr, key=value), then any base64
# run longer than a SHA-256 in hex (a signature, a certificate, a token; hashes stay readable)
_KEYS_ALT = "|".join(sorted(TRUNCATE_KEYS, key=len, reverse=True))
_KEYED_RE = re.compile(r"""(?i)(\b(?:""" + _KEYS_ALT + r""")[\\"']*\s*[:=]\s*[\\"']*)([^\\"'\s,}]{9,})""")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/_-]{65,}={0,2}")


def mask_id(value: str) -> str:
    """Z299999929 -> Z29*****29 (keeps 3 + 2 characters)."""
    return ID_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)[0]}*****{m.group(4)}", value)


def mask_text(value: str) -> str:
    """A free text (an exception's message, a traceback) with IDs masked and signatures cut to 8 characters."""
    value = _KEYED_RE.sub(lambda m: m.group(1) + m.group(2)[:8] + "…", value)
    value = _BASE64_RE.sub(lambda m: m.group(0)[:8] + "…", value)
    return mask_id(value)


def _mask_value(key: str, value: Any) -> Any:
    k = key.lower()
    if k in SECRET_KEYS:
        return "***"
    if isinstance(value, str):
        if k in TRUNCATE_KEYS and len(value) > 8:
            return value[:8] + "…"
        return mask_text(value)
    if isinstance(value, dict):
        return {kk: _mask_value(str(kk), vv) for kk, vv in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_value(key, v) for v in value]
    return value


def mask_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    return {k: _mask_value(k, v) for k, v in event_dict.items()}


def processors(*, json: bool = True) -> list[Any]:
    """The services' chain: context, level, time, the exception as plain text, masking, then one JSON
    line (or a console line, for a person reading a terminal or a test's output)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # a plain traceback: file, line, source, message; no locals
        mask_event,
        structlog.processors.JSONRenderer(ensure_ascii=False) if json else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback),
    ]


_configured = False


def configure(level: str = "INFO", *, json: bool = True) -> None:
    global _configured
    if _configured:
        return
    _configured = True
    lvl = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=processors(json=json),
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
