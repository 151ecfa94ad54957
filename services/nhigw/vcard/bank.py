"""Card factory and the in-process reader bank (virtual readers with slots, no pcscd)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from nhigw.contracts.models import CardKind
from nhigw.vcard.cards import HcCard, HpcCard, SamCard, VirtualCard
from nhigw.vcard.identities import Identities, KeyStore


class UnknownCard(ValueError):
    pass


@dataclass
class CardFactory:
    identities: Identities
    keys: KeyStore

    def make(self, spec: str) -> VirtualCard:
        """``hc:<cardNo>``, ``sam:<samId>`` or ``hpc:<cardId>``."""
        kind, _, ident = spec.partition(":")
        if kind == CardKind.HC and ident in self.identities.hcs:
            return HcCard(self.identities.hcs[ident])
        if kind == CardKind.SAM and ident in self.identities.sams:
            return SamCard(self.identities.sams[ident], self.keys.key(ident))
        if kind == CardKind.HPC and ident in self.identities.hpcs:
            return HpcCard(self.identities.hpcs[ident], self.keys.key(ident))
        raise UnknownCard(f"unknown card {spec!r}; known: {self.known()}")

    def known(self) -> list[str]:
        return (
            [f"sam:{k}" for k in self.identities.sams]
            + [f"hc:{k}" for k in self.identities.hcs]
            + [f"hpc:{k}" for k in self.identities.hpcs]
        )

    def default_specs(self) -> list[str]:
        """One SAM, one HC and one HPC: the seed's test cards."""
        return [f"sam:{next(iter(self.identities.sams))}", f"hc:{next(iter(self.identities.hcs))}", f"hpc:{next(iter(self.identities.hpcs))}"]


@dataclass
class VirtualReaderBank:
    """In-process readers: ``names[i]`` holds ``cards[i]`` or nothing. Insert/remove at will.

    ``listeners`` are called (no arguments, from the thread that changed the bank) on every
    insert and remove: the in-process reader backend wakes its card monitor with them.
    """

    names: list[str] = field(default_factory=lambda: [f"nhigw Virtual Reader {i}" for i in range(3)])
    cards: dict[str, VirtualCard] = field(default_factory=dict)
    generation: int = 0  # bumped on every insert/remove so connections can notice a swap
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def _changed(self) -> None:
        self.generation += 1
        for fn in list(self.listeners):
            fn()

    def insert(self, reader: str, card: VirtualCard) -> None:
        if reader not in self.names:
            raise KeyError(reader)
        card.reset()
        self.cards[reader] = card
        self._changed()

    def remove(self, reader: str) -> None:
        self.cards.pop(reader, None)
        self._changed()
