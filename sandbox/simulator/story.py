"""One token's story: its transitions, wallet events and API calls, drawn from its own RNG.

Each token has an independent random stream (seeded by the run seed and its index), so a
story depends only on (seed, index, window): the output is identical across runs and machines.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sandbox.simulator.profiles import (
    BY_WALLET,
    HOURLY,
    MERCHANT_CATEGORIES,
    PROFILES,
    WEEKDAY,
    WalletProfile,
)

SCHEMA_VERSION = 1


def pick(rng: random.Random, weights: dict[str, float]) -> str:
    keys = list(weights)
    cum = list(itertools.accumulate(weights[k] for k in keys))
    return keys[bisect.bisect_right(cum, rng.random() * cum[-1])]


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


@dataclass
class Story:
    token_ref: str
    wallet_id: str
    network: str
    ops: list[dict] = field(default_factory=list)  # items for POST /v1/batch, in order
    events: list[dict] = field(default_factory=list)  # wallet events (Kinesis)
    apigw: list[dict] = field(default_factory=list)  # API Gateway access log records
    lambdas: list[dict] = field(default_factory=list)  # Lambda log records
    state: str = "TokenRequested"


class StoryTeller:
    def __init__(self, seed: int, start: datetime, days: int):
        self.seed, self.start, self.days = seed, start, days
        self.end = start + timedelta(days=days)
        day_weights = [WEEKDAY[(start + timedelta(days=d)).weekday()] for d in range(days)]
        self._day_cum = list(itertools.accumulate(day_weights))
        self._hour_cum = list(itertools.accumulate(HOURLY))
        self._wallets = {p.wallet_id: p.share for p in PROFILES}

    # -- random helpers -------------------------------------------------------------------
    def _uuid(self, rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def _time_in_day(self, rng: random.Random, day_start: datetime) -> datetime:
        hour = bisect.bisect_right(self._hour_cum, rng.random() * self._hour_cum[-1])
        return day_start + timedelta(hours=hour, seconds=rng.random() * 3600)

    def _latency(self, rng: random.Random, p: WalletProfile) -> int:
        if rng.random() < p.tail_share:  # heavy tail: Pareto, alpha 1.5
            return int(p.latency_median_ms * 3 * (1 - rng.random()) ** (-1 / 1.5))
        return max(20, int(rng.lognormvariate(math.log(p.latency_median_ms), p.latency_sigma)))

    # -- the story ------------------------------------------------------------------------
    def tell(self, index: int) -> Story:
        rng = random.Random(f"{self.seed}:{index}")
        wallet = pick(rng, self._wallets)
        p = BY_WALLET[wallet]
        network, token_type = pick(rng, p.networks), pick(rng, p.token_types)
        token_ref = f"tok-{self.seed}-{index:07d}"
        card_ref = "cref-" + hashlib.sha256(f"{self.seed}:card:{index}".encode()).hexdigest()[:24]
        day = bisect.bisect_right(self._day_cum, rng.random() * self._day_cum[-1])
        t = self._time_in_day(rng, self.start + timedelta(days=day))
        s = Story(token_ref, wallet, network)
        base = {"wallet_id": wallet, "token_ref": token_ref, "schema_version": SCHEMA_VERSION}

        def event(kind: str, at: datetime, **attrs) -> None:
            s.events.append({"event_id": self._uuid(rng), "event_type": kind,
                             "event_time": iso(at)} | base | attrs)

        def op(to_state: str | None, at: datetime, actor: str, **attrs) -> None:
            eid = self._uuid(rng)
            if to_state is None:
                s.ops.append({"op": "create", "token_ref": token_ref, "wallet_id": wallet,
                              "network": network, "token_type": token_type,
                              "card_ref": card_ref, "event_id": eid, "occurred_at": iso(at),
                              "actor": actor})
                return
            s.ops.append({"op": "transition", "token_ref": token_ref, "to_state": to_state,
                          "event_id": eid, "occurred_at": iso(at), "actor": actor} | attrs)
            s.state = to_state

        def api_call(route: str, function: str, at: datetime, status: int, latency: int):
            rid = self._uuid(rng)
            integration = max(1, int(latency * (0.7 + 0.25 * rng.random())))
            s.apigw.append({"request_id": rid, "request_time": iso(at), "route": route,
                            "status": status, "latency_ms": latency,
                            "integration_latency_ms": integration, "wallet_id": wallet})
            memory = 512 if function.endswith("provision") else 256
            error = None
            if status >= 500:
                error = "Task timed out" if latency > 5000 else "InternalError"
            s.lambdas.append({"request_id": rid, "timestamp": iso(at), "function": function,
                              "duration_ms": round(integration * 0.93, 2),
                              "billed_duration_ms": math.ceil(integration * 0.93),
                              "memory_size_mb": memory,
                              "max_memory_used_mb": int(memory * (0.3 + 0.4 * rng.random())),
                              "error": error})

        # provisioning: requests (errors are retried by the wallet), then the decision
        op(None, t, "wallet")
        while True:
            rid, latency = self._uuid(rng), self._latency(rng, p)
            event("provision_request", t, request_id=rid, network=network,
                  token_type=token_type)
            roll = rng.random()
            status = 500 + rng.choice((0, 2, 3)) if roll < p.error_5xx else (
                400 + rng.choice((0, 4, 22)) if roll < p.error_5xx + p.error_4xx else 200)
            api_call("POST /v1/provision", "tokenwatch-provision", t, status, latency)
            t += timedelta(milliseconds=latency)
            if status == 200:
                break
            event("provision_response", t, request_id=rid, latency_ms=latency, http_status=status,
                  decision=None, error_code=f"E{status}")
            t += timedelta(seconds=2 + rng.random() * 30)
        op("ProvisionInitiated", t - timedelta(milliseconds=latency // 2), "wallet")
        decision = pick(rng, p.decisions)
        event("provision_response", t, request_id=rid, latency_ms=latency, http_status=200,
              decision=decision, error_code=None)
        idv = pick(rng, p.idv_methods) if decision == "yellow" else None
        op("ProvisionPending", t, "token_service", decision=decision,
           **({"idv_method": idv} if idv else {}))
        if decision == "red":
            t += timedelta(seconds=rng.random() * 2)
            op("ProvisionFailed", t, "issuer" if rng.random() < 0.6 else "token_service",
               reason_code=rng.choice(("issuer_declined", "risk_declined")))
            return s
        if decision == "yellow":
            t += timedelta(seconds=1 + rng.random() * 5)
            event("idv_challenge", t, idv_method=idv)
            api_call("POST /v1/idv/challenge", "tokenwatch-idv", t, 200, self._latency(rng, p))
            slow = idv == "call_center"
            if rng.random() >= p.yellow_completion:
                timeout = rng.random() < p.yellow_abandon
                t += timedelta(minutes=(30 if timeout else 2 + rng.random() * (60 if slow
                                                                               else 10)))
                event("idv_result", t, idv_method=idv, outcome="timeout" if timeout else "fail")
                if not timeout:
                    api_call("POST /v1/idv/verify", "tokenwatch-idv", t, 200,
                             self._latency(rng, p))
                op("ProvisionFailed", t, "token_service" if timeout else "issuer",
                   reason_code="idv_timeout" if timeout else "idv_failed")
                return s
            t += timedelta(minutes=1 + rng.random() * (90 if slow else 8))
            event("idv_result", t, idv_method=idv, outcome="pass")
            api_call("POST /v1/idv/verify", "tokenwatch-idv", t, 200, self._latency(rng, p))
        t += timedelta(seconds=0.2 + rng.random() * 2)
        op("ProvisionSuccess", t, "issuer")
        t += timedelta(seconds=1 + rng.random() * 10)
        op("WalletActive", t, "wallet")
        t += timedelta(seconds=1 + rng.random() * 60)
        op("TokenActive", t, "token_service")
        self._active_life(rng, p, s, t, event, op, api_call)
        return s

    def _active_life(self, rng, p: WalletProfile, s: Story, t: datetime, event, op, api_call):
        """Day by day after activation: usage, suspensions, resumes, deactivation, expiry."""
        suspended_by: str | None = None

        def notice(at: datetime, **attrs):
            event("lifecycle_notice", at, new_state=s.state, **attrs)
            api_call("POST /v1/notify", "tokenwatch-notify", at, 200, self._latency(rng, p))

        day_start = datetime(t.year, t.month, t.day, tzinfo=UTC)
        while day_start < self.end:
            day_end = day_start + timedelta(days=1)
            if suspended_by is None:
                factor = WEEKDAY[day_start.weekday()]
                n_auths = _poisson(rng, p.auths_per_day * factor)
                for _ in range(n_auths):
                    at = self._time_in_day(rng, day_start)
                    if t < at < self.end:
                        amount = round(rng.lognormvariate(math.log(p.amount_median), 0.8), 2)
                        event("token_used", at, amount=amount, currency=pick(rng, p.currencies),
                              merchant_category=pick(rng, MERCHANT_CATEGORIES))
                if rng.random() < 0.5:  # the wallet polls the token's status
                    at = self._time_in_day(rng, day_start)
                    if t < at < self.end:
                        api_call("GET /v1/tokens/status", "tokenwatch-status", at, 200,
                                 self._latency(rng, p) // 3)
            roll = rng.random()
            at = max(t, self._time_in_day(rng, day_start)) + timedelta(seconds=1)
            if at >= self.end:
                break
            if suspended_by is None and roll < p.suspend_per_day:
                suspended_by = rng.choice(("cardholder", "issuer", "issuer"))
                reason = ("device_lost" if suspended_by == "cardholder"
                          else rng.choice(("suspected_fraud", "account_closed")))
                op("TokenSuspended", at, suspended_by, reason_code=reason)
                notice(at, reason_code=reason, actor=suspended_by)
                t = at
                if rng.random() < p.resume_within_day:
                    t = at + timedelta(hours=1 + rng.random() * 10)
                    if t >= self.end:
                        break
                    actor = suspended_by
                    if rng.random() < p.resume_other_actor:
                        actor = "issuer" if suspended_by == "cardholder" else "cardholder"
                    reason = "device_found" if suspended_by == "cardholder" else "not_fraud"
                    op("TokenActive", t, actor, reason_code=reason)
                    notice(t, reason_code=reason, actor=actor)
                    suspended_by = None
            elif roll < p.suspend_per_day + p.deactivate_per_day:
                actor = rng.choice(("cardholder", "issuer", "wallet"))
                reason = {"cardholder": "cardholder_request", "issuer": "account_closed",
                          "wallet": "wallet_removed"}[actor]
                op("TokenDeactivated", at, actor, reason_code=reason)
                notice(at, reason_code=reason, actor=actor)
                return
            elif roll < p.suspend_per_day + p.deactivate_per_day + p.expire_per_day:
                op("TokenExpired", at, "system", reason_code="expiry")
                notice(at, reason_code="expiry", actor="system")
                return
            t = max(t, at)
            day_start = day_end


def _poisson(rng: random.Random, lam: float) -> int:
    threshold, k, prod = math.exp(-lam), 0, rng.random()
    while prod > threshold:
        k += 1
        prod *= rng.random()
    return k
