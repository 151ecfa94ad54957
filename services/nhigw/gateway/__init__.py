"""``nhigw gateway``: the clinic's single entry point (HTTP, default 127.0.0.1:8066).

Serves the NHI cloud's own paths (``/api/v1/...``) in two modes: pass-through (the
body carries the HIS's signature object) and one-call (``X-Workstation`` names a
workstation; the gateway gets the signature from its agent over the bus). Any number of
replicas share one Redis.

Modules:
- ``app``: the HTTP API (business routes, workstations, component calls, ops, audit, metrics);
- ``service``: the engine (admission, queue, workers, answers) — start reading here;
- ``queue``: Redis Stream + consumer group (and its in-process twin), reclaim, dead letters;
- ``upstream``: the NHI cloud client (exception tree, retries, budget, breaker, rate limit);
- ``audit``: the hash-chained audit trail and its verifier;
- ``agents`` / ``registry``: agent enrolment and keys, presence;
- ``auth``: HIS API keys and scopes; ``store``: the shared key/value store;
- ``metrics``: Prometheus; ``cli``: ``nhigw gateway ...`` and ``nhigw audit ...``.
"""
