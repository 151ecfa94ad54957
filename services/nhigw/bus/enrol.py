"""Agent enrolment: a one-time token turns into a per-agent key, shared only by that agent and the gateways.

Flow (all over the bus, so an agent needs nothing but Redis):

1. An operator runs ``nhigw gateway enrol-token --workstation ws-03``: the gateway side
   stores ``enrol-token:{tokenId}`` = sealed(``{workstation, token}``) with a TTL and
   prints the token once. ``tokenId`` = first 32 hex of sha256(token).
2. The agent (``nhigw agent --enrol-token T``) publishes ``EnrolRequest`` with
   ``tokenId``, a fresh nonce and ``mac`` = HMAC-SHA256(T, ``workstation|agentId|nonce``).
   The token itself never crosses the bus.
3. A gateway replica checks the MAC, then consumes the token with GETDEL (exactly one
   replica wins), creates a random 32-byte agent key, stores it sealed with the gateway
   key under ``agent-key:{workstation}`` (replacing any earlier agent of that
   workstation), and answers ``EnrolReply`` with the key AES-GCM-wrapped under
   HKDF(T, nonce): only the token holder can unwrap it.
4. From then on every message between that agent and any gateway replica is a
   ``SealedEnvelope`` under that key (``nhigw.bus.seal``). The agent keeps its identity in
   its data directory, sealed to the machine and user (``SecretBox``), so a restart needs
   no new token.

A forged request (wrong MAC, unknown or used token, workstation mismatch) gets no key
and burns nothing. A forged reply (anyone who may publish on the agents' channels sees the
``agentId`` go by) does not end the agent's wait either: only a key that unwraps with the token
does; a refusal (unauthenticated, so possibly forged) is what the agent reports if no key came
by its deadline.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from nhigw.bus.base import Bus, BusError
from nhigw.common.secretbox import SecretBox, SecretBoxError
from nhigw.contracts.buskeys import BusKeys
from nhigw.contracts.models import EnrolReply, EnrolRequest


class EnrolError(Exception):
    """Enrolment failed: refused by the gateway, or no gateway answered."""


@dataclass(frozen=True)
class AgentIdentity:
    workstation: str
    agentId: str
    key: bytes

    def to_json(self) -> bytes:
        return json.dumps({"workstation": self.workstation, "agentId": self.agentId, "key": base64.b64encode(self.key).decode()}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "AgentIdentity":
        d = json.loads(raw)
        return cls(d["workstation"], d["agentId"], base64.b64decode(d["key"]))


def new_token() -> str:
    """A one-time enrolment token. Prefixed like the HIS API keys (``nhigw_``), so it never begins
    with "-": unprefixed, 1 in 64 urlsafe tokens did, and ``--enrol-token TOKEN`` then failed
    (argparse reads it as an option)."""
    return "nhigwet_" + secrets.token_urlsafe(32)


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def request_mac(token: str, workstation: str, agent_id: str, nonce: str) -> str:
    return hmac.new(token.encode(), f"{workstation}|{agent_id}|{nonce}".encode(), hashlib.sha256).hexdigest()


def _wrap_key(token: str, nonce: str) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce.encode(), info=b"nhigw-enrol-wrap").derive(token.encode()))


def wrap_key(token: str, nonce: str, agent_id: str, key: bytes) -> str:
    iv = os.urandom(12)
    return base64.b64encode(iv + _wrap_key(token, nonce).encrypt(iv, key, agent_id.encode())).decode()


def unwrap_key(token: str, nonce: str, agent_id: str, wrapped: str) -> bytes:
    blob = base64.b64decode(wrapped)
    return _wrap_key(token, nonce).decrypt(blob[:12], blob[12:], agent_id.encode())


async def enrol(bus: Bus, keys: BusKeys, workstation: str, token: str, *, timeout_s: float = 30.0, resend_s: float = 1.0) -> AgentIdentity:
    """Agent side: ask the gateways for a key with ``token``; resend until one answers."""
    agent_id = uuid.uuid4().hex[:12]
    nonce = secrets.token_hex(16)
    req = EnrolRequest(workstation=workstation, agentId=agent_id, tokenId=token_id(token), nonce=nonce, mac=request_mac(token, workstation, agent_id, nonce))
    sub = await bus.subscribe(keys.enrol_reply(agent_id))
    refused: str | None = None
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            try:
                await bus.publish(keys.enrol, req.model_dump_json().encode())
            except BusError:
                pass  # Redis away: try again at the next resend
            try:
                _ch, data = await sub.get(min(resend_s, max(0.01, deadline - loop.time())))
            except TimeoutError:
                continue
            # Anyone who may publish on the agents' channels can answer here (the agentId is on the enrolment
            # channel): only a key wrapped with our token ends the wait; a refusal or anything else is kept as
            # the reason to report if no gateway gives a key before the deadline.
            try:
                reply = EnrolReply.model_validate_json(data)
            except ValueError:
                continue
            if reply.agentId != agent_id or reply.workstation != workstation:
                continue
            if not reply.ok or not reply.wrappedKey:
                refused = reply.error.messageEn + (f": {reply.error.detail}" if reply.error.detail else "") if reply.error else "refused"
                continue
            try:
                return AgentIdentity(workstation, agent_id, unwrap_key(token, nonce, agent_id, reply.wrappedKey))
            except Exception:  # noqa: BLE001 -- InvalidTag, bad base64: not wrapped with our token (a forgery)
                refused = refused or "enrolment reply not wrapped with this token"
                continue
        raise EnrolError(refused or f"no gateway answered the enrolment within {timeout_s:g} s")
    finally:
        await sub.close()


def identity_path(data_dir: Path, prefix: str) -> Path:
    return Path(data_dir) / f"bus-identity.{prefix}.sealed"


def save_identity(data_dir: Path, prefix: str, ident: AgentIdentity) -> None:
    SecretBox(data_dir, "nhigw-agent-bus-identity").write(identity_path(data_dir, prefix), ident.to_json())


def load_identity(data_dir: Path, prefix: str) -> AgentIdentity | None:
    p = identity_path(data_dir, prefix)
    if not p.exists():
        return None
    try:
        return AgentIdentity.from_json(SecretBox(data_dir, "nhigw-agent-bus-identity").read(p))
    except (SecretBoxError, ValueError, KeyError):
        return None


async def agent_identity(bus: Bus, keys: BusKeys, workstation: str, *, data_dir: Path | None, token: str | None, timeout_s: float = 30.0) -> AgentIdentity:
    """Agent start-up: enrol with ``token`` (and keep the identity), or load the kept identity."""
    if token:
        ident = await enrol(bus, keys, workstation, token, timeout_s=timeout_s)
        if data_dir is not None:
            save_identity(data_dir, keys.prefix, ident)
        return ident
    kept = load_identity(data_dir, keys.prefix) if data_dir is not None else None
    if kept is not None and kept.workstation == workstation:
        return kept
    raise EnrolError(f"agent {workstation!r} is not enrolled: start it once with --enrol-token (from `nhigw gateway enrol-token --workstation {workstation}`)")
