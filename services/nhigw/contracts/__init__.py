"""Wire contracts shared by every service: status codes, pydantic models, bus names, signing.

Everything that crosses a process boundary (HTTP bodies, bus messages, APDUs) is
defined here, and ``proto/`` is generated from these modules (``nhigw proto``).
"""
