"""compat: the legacy csHis function set and the virtual-card SDK 2.x routes on top of the 6.0 APIs.

- ``nhigw.compat.cshis`` — ``CsHis``: one async method per legacy function (Python API);
- ``nhigw.compat.buffers`` — the fixed-width Big5 layouts, pure functions;
- ``nhigw.compat.errors`` — legacy error codes and the one 6.0 → legacy table;
- ``nhigw.compat.vhc`` — the SDK route table; ``nhigw.compat.app`` — the HTTPS service (5067).
"""
