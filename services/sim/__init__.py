"""``nhigw sim``: an offline stand-in for the NHI cloud business API (medvpndc / medvpndct).

Same paths as the cloud (``/api/v1/...``); every business call's signature is
verified (the SAM's registered key, ``clientRandom`` never accepted twice,
``serviceType`` fitting the route); the DC's SAM verification (``/dc/v1/SamAuth``);
and a test-card API (``/test/v1/...``) to provision virtual SAMs.
"""
