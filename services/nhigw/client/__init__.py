"""``nhigw.client``: a small typed async client for HIS developers and for nhigw's own compat layer.

Two clients, one transport:

- ``AgentClient`` — the reader agent's 6.0 *component* API (``https://127.0.0.1:5066/api/...``):
  status, Initial / Finalize, SAM / HPC / HC states, PINs, signatures.
- ``CloudClient`` — the NHI cloud *business* API (``/api/v1/...``) as served by the NHI cloud,
  the simulator or the gateway. Pass-through (you send a signature object you got from an
  agent) or, against the gateway, one-call (``workstation="ws-01"``: no signature at all).

Blocking code uses ``nhigw.client.sync.SyncAgentClient`` / ``SyncCloudClient`` (same methods).

Every call returns a pydantic model (``nhigw.contracts.models`` where one exists) and raises
the tree in ``nhigw.client.errors``: ``TransportError`` (no answer) apart from
``StatusCodeError`` (a 6.0 ``statusCode``)::

    async with AgentClient("https://127.0.0.1:5066") as agent, CloudClient("http://127.0.0.1:8066") as cloud:
        sig = await agent.hc_signature("01")
        patient = await cloud.register(sig)            # RegisterResponse
        print(patient.name, patient.cardValidity)
"""

from __future__ import annotations

from nhigw.client.agent import AgentClient
from nhigw.client.cloud import CloudClient
from nhigw.client.errors import (
    CloudError,
    ComponentError,
    ConnectError,
    DecodingError,
    GatewayError,
    NhigwError,
    RequestTimeout,
    StatusCodeError,
    TransportError,
)

__all__ = [
    "AgentClient",
    "CloudClient",
    "CloudError",
    "ComponentError",
    "ConnectError",
    "DecodingError",
    "GatewayError",
    "NhigwError",
    "RequestTimeout",
    "StatusCodeError",
    "TransportError",
]
