"""Every bus channel / key name, built here and nowhere else.

``prefix`` isolates deployments (and tests) sharing one Redis: the default is ``nhigw``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BusKeys:
    prefix: str = "nhigw"

    @property
    def presence(self) -> str:
        """Agents publish ``Presence`` here: on start, on each state change, as a heartbeat."""
        return f"{self.prefix}:presence"

    def calls(self, workstation: str) -> str:
        """Gateway -> one agent: ``SignCall`` messages."""
        return f"{self.prefix}:ws:{workstation}:calls"

    def replies(self, node_id: str) -> str:
        """Agent -> the gateway replica that asked: ``SignReply`` messages."""
        return f"{self.prefix}:reply:{node_id}"
