"""``nhigw sim``: an offline stand-in for the NHI cloud business API (medvpndc / medvpndct).

Same paths as the cloud (``/api/v1/...``, every route of ``contracts/routes.py``; request and
response bodies in ``contracts/cloud.py``, published as ``proto/openapi/sim.json``):

- signatures (``auth.py``): the registered SAM key, ``clientRandom`` once (3245), the route's
  signature kind (3300) and ``serviceType`` (3100);
- data (``store.py``, seed ``data/patients.json``): seeded test patients with insurance data,
  in memory only (personal data); card data newest first with start / end positions;
  就醫序號 ``W001``..``W999`` per institution per day; 就醫識別碼 of 20 characters;
- rules (``business.py``): the 3xxx codes of the 6.0 table (rollback after 24 h 3218, no visits
  3213, diagnosis written 3209, upload signed over an hour ago 8203 ...);
- writes honour ``Idempotency-Key`` (same key and body: the first answer again, not written
  twice; another body: 409) and are counted per route and key (``GET /test/v1/Stats``);
- the DC (``dc.py``): SAM verification, virtual-HC tokens, cloud SAM files;
- the test-card API (``testcards.py``): apply for virtual test cards, set their marks;
- the admin API (``admin.py``, off unless ``nhigw sim --admin`` / ``NHIGW_SIM_ADMIN=1``):
  fault injection per route (latency, errors, connection resets, before or after the call;
  the next N calls or a seeded rate) and the simulator's clock.
"""
