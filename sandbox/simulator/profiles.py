"""How each wallet behaves: the knobs the simulator draws from.

Rates are per token (provisioning) or per active token and day (lifecycle, usage). The numbers
are plausible, not measured: they give each wallet a distinct, recognisable mix. Every
profile's wallet is registered in ``tokenwatch/wallets.py`` (the state service refuses any
other; ``tests/sandbox/test_simulator.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WalletProfile:
    wallet_id: str
    share: float  # share of all tokens
    networks: dict[str, float]
    token_types: dict[str, float]
    decisions: dict[str, float]  # green / yellow / red
    idv_methods: dict[str, float]
    yellow_completion: float  # share of yellow paths that pass ID&V
    yellow_abandon: float  # of the failures, share that time out (the rest fail ID&V)
    latency_median_ms: float  # provisioning API latency, lognormal body...
    latency_sigma: float
    tail_share: float  # ...and a Pareto tail for this share of calls
    error_4xx: float
    error_5xx: float
    suspend_per_day: float
    resume_within_day: float  # share of suspensions resumed (within hours)
    resume_other_actor: float  # share of resumes done by a different actor than the suspender
    deactivate_per_day: float
    expire_per_day: float
    auths_per_day: float  # payment authorisations per active token per day
    amount_median: float
    currencies: dict[str, float] = field(default_factory=lambda: {"USD": 0.7, "EUR": 0.3})


PROFILES: tuple[WalletProfile, ...] = (
    WalletProfile(
        "apple_pay", 0.42, {"visa": 0.6, "mastercard": 0.4},
        {"secure_element": 1.0}, {"green": 0.82, "yellow": 0.13, "red": 0.05},
        {"otp_sms": 0.6, "issuer_app": 0.25, "call_center": 0.1, "otp_email": 0.05},
        0.78, 0.5, 320, 0.45, 0.02, 0.008, 0.004, 0.004, 0.8, 0.1, 0.002, 0.0005, 1.8, 24.0),
    WalletProfile(
        "google_pay", 0.33, {"visa": 0.55, "mastercard": 0.45},
        {"hce": 0.85, "card_on_file": 0.15}, {"green": 0.76, "yellow": 0.18, "red": 0.06},
        {"otp_sms": 0.55, "otp_email": 0.2, "issuer_app": 0.15, "call_center": 0.1},
        0.72, 0.55, 380, 0.5, 0.03, 0.012, 0.007, 0.005, 0.75, 0.12, 0.003, 0.0005, 1.4, 21.0),
    WalletProfile(
        "samsung_pay", 0.17, {"visa": 0.5, "mastercard": 0.5},
        {"secure_element": 0.7, "hce": 0.3}, {"green": 0.72, "yellow": 0.2, "red": 0.08},
        {"otp_sms": 0.5, "call_center": 0.25, "otp_email": 0.15, "issuer_app": 0.1},
        0.68, 0.6, 450, 0.55, 0.04, 0.015, 0.01, 0.006, 0.7, 0.15, 0.004, 0.0005, 1.1, 19.0),
    WalletProfile(
        "acme_wallet", 0.08, {"visa": 0.7, "mastercard": 0.3},
        {"card_on_file": 0.6, "hce": 0.4}, {"green": 0.65, "yellow": 0.22, "red": 0.13},
        {"otp_email": 0.5, "otp_sms": 0.3, "call_center": 0.2},
        0.6, 0.65, 600, 0.6, 0.06, 0.03, 0.02, 0.01, 0.6, 0.2, 0.006, 0.001, 0.7, 35.0),
)

BY_WALLET = {p.wallet_id: p for p in PROFILES}

#: Relative activity by hour of day (UTC) and by weekday (Monday first).
HOURLY = (0.2, 0.12, 0.08, 0.06, 0.06, 0.1, 0.3, 0.6, 0.9, 1.0, 1.0, 1.1, 1.4, 1.3, 1.0, 1.0,
          1.1, 1.3, 1.4, 1.3, 1.1, 0.9, 0.6, 0.35)
WEEKDAY = (0.95, 0.95, 1.0, 1.0, 1.15, 1.25, 0.8)

MERCHANT_CATEGORIES = {"5411": 0.25, "5812": 0.2, "5814": 0.15, "5541": 0.1, "4111": 0.1,
                       "5999": 0.1, "5311": 0.1}
