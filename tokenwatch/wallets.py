"""The wallet registry: every token requestor (wallet) the platform accepts, defined once.

Onboarding a wallet is adding one ``Wallet`` entry to ``WALLETS`` below, then regenerating the
dbt seed (``python dbt_project/generate_seeds.py`` writes ``seeds/wallets.csv`` from here;
``--check`` and ``tests/dbt/test_seeds.py`` fail while the seed lags behind). Everything else
reads this module: the state service accepts exactly these ``wallet_id``s (any other gets 422,
and ``/openapi.json`` lists them as an enum), the quality gate accepts exactly these in the KPI
marts, ``dim_wallet`` takes names, kinds and token requestor ids from the seed, and the
simulator's profiles may only use registered wallets.

A wallet is ``native`` (the platform wallets: Apple Pay, Google Pay, Samsung Pay) or ``custom``
(an issuer's or partner's own wallet). Its Token Requestor IDs (TRIDs) are the 11-digit ids the
card networks assign to it; ``None`` when not known.

This module imports nothing of tokenwatch's or the stages': every layer may read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

#: A wallet id: lowercase letters, digits and underscores, starting with a letter, 3 to 40
#: characters.
WALLET_ID_PATTERN = r"^[a-z][a-z0-9_]{2,39}$"
#: A network's Token Requestor ID: 11 digits.
TOKEN_REQUESTOR_ID_PATTERN = r"^[0-9]{11}$"
KINDS: tuple[str, ...] = ("native", "custom")
#: Where the registry lives, for messages that tell a caller how to register a wallet.
REGISTRY_PATH = "tokenwatch/wallets.py"

WalletKind = Literal["native", "custom"]


@dataclass(frozen=True)
class Wallet:
    """One token requestor."""

    wallet_id: str
    display_name: str
    kind: WalletKind
    visa: str | None = None  # Visa Token Requestor ID
    mastercard: str | None = None  # Mastercard Token Requestor ID

    def __post_init__(self) -> None:
        if not re.fullmatch(WALLET_ID_PATTERN, self.wallet_id):
            raise ValueError(f"wallet id {self.wallet_id!r} does not match {WALLET_ID_PATTERN}")
        if self.kind not in KINDS:
            raise ValueError(f"wallet {self.wallet_id}: kind {self.kind!r} is not one of "
                             f"{', '.join(KINDS)}")
        for network, trid in (("visa", self.visa), ("mastercard", self.mastercard)):
            if trid is not None and not re.fullmatch(TOKEN_REQUESTOR_ID_PATTERN, trid):
                raise ValueError(f"wallet {self.wallet_id}: the {network} token requestor id "
                                 "must be 11 digits")

    def token_requestor_id(self, network: str) -> str | None:
        """The wallet's Token Requestor ID on ``network`` (``visa`` or ``mastercard``)."""
        if network not in ("visa", "mastercard"):
            raise KeyError(network)
        return getattr(self, network)


#: The registry, in display order: the native wallets, then the custom ones.
WALLETS: tuple[Wallet, ...] = (
    Wallet("apple_pay", "Apple Pay", "native", visa="40010030273", mastercard="50110030273"),
    Wallet("google_pay", "Google Pay", "native", visa="40010075001"),
    Wallet("samsung_pay", "Samsung Pay", "native", visa="40010043095"),
    Wallet("acme_wallet", "Acme Wallet", "custom"),  # the simulator's custom wallet
)


def wallet_ids(kind: WalletKind | None = None) -> tuple[str, ...]:
    """The registered wallet ids in registry order (only those of ``kind`` when given)."""
    return tuple(w.wallet_id for w in WALLETS if kind is None or w.kind == kind)


def get(wallet_id: str) -> Wallet:
    """The registered wallet ``wallet_id``; ``KeyError`` naming the registry when there is
    none."""
    for wallet in WALLETS:
        if wallet.wallet_id == wallet_id:
            return wallet
    raise KeyError(f"{wallet_id!r} is not a registered wallet (see {REGISTRY_PATH})")


def is_registered(wallet_id: object) -> bool:
    """True when ``wallet_id`` is a registered wallet's id (exactly: no trimming, no case
    folding)."""
    return isinstance(wallet_id, str) and wallet_id in wallet_ids()


def unregistered_message() -> str:
    """What a caller is told about an unregistered wallet id (never echoing the value: it
    may be anything, a card number included)."""
    return (f"is not a registered wallet; registered: {', '.join(wallet_ids())} "
            f"(onboard a wallet in {REGISTRY_PATH})")
