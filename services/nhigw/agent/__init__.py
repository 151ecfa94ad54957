"""The reader agent: one workstation's readers and cards, the 6.0 component API.

Layers: ``cardio`` (the ``CardConnection`` seam and its pyscard / in-process
adapters) -> ``cards`` (HC / SAM / HPC sessions that know only the seam) ->
``core`` (the state machine of the seed's tables) -> ``app`` (HTTPS API) and
``buslink`` (the gateway's signature calls over the bus).
"""
