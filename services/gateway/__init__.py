"""``nhigw gateway``: the clinic's single entry point (HTTP, default 127.0.0.1:8066).

Serves the NHI cloud's own paths (``/api/v1/...``) in two modes: pass-through (the
body carries the HIS's signature object) and one-call (``X-Workstation`` names a
workstation; the gateway gets the signature from its agent over the bus).
"""
