"""nhigw: an open implementation of the NHI card reader control software 6.0, as a clinic gateway.

The distribution's import name is ``nhigw``; its sources live in ``services/nhigw/`` (folder name = import name), one
folder per service (``agent``, ``gateway``, ``sim``, ``vcard``), with the shared
wire contracts in ``nhigw.contracts`` and small shared helpers in ``nhigw.common``.
"""

__version__ = "0.1.0"
