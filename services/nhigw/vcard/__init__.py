"""Virtual NHI cards (HC, SAM, HPC) that answer APDUs per ``proto/apdu-profile.md``.

``cards`` holds the pure card logic (APDU in, response out); ``vpcd`` connects a card
to a real pcscd through vsmartcard's vpcd driver; ``identities`` loads the seeded test
identities and the cards' keys.
"""
