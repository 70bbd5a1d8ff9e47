"""API keys (Bearer auth) and per-key request / token rate limits.

Keys are compared as SHA-256 digests with :func:`hmac.compare_digest` against every known key,
so neither the key's length nor which key matched shows in the timing. Limits are token
buckets per key, refilled continuously: ``rpm`` requests and ``tpm`` tokens per minute (Jina's
defaults for a keyed client are 500 RPM and 1M TPM). Exact token counts are only known after
scoring, so a request *reserves* an estimate of its tokens atomically before any model work
(:meth:`KeyLimits.reserve`: the event loop runs it without a pause, so concurrent requests cannot
all pass against the same tokens) and settles the difference with its real usage afterwards
(:meth:`KeyLimits.settle`); a failed request gives its reservation back.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from m0rank.errors import AuthenticationError, RateLimitError

__all__ = ["ApiKeyAuth", "TokenBucket", "KeyLimits", "Reservation", "key_fingerprint"]

Clock = Callable[[], float]


def key_fingerprint(key: str) -> str:
    """Short, non-reversible name of a key for logs and rate-limit state (never the key)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


class ApiKeyAuth:
    """Checks ``Authorization: Bearer <key>`` headers against the configured keys.

    Args:
        keys: Accepted keys; empty means authentication is off and any header is tolerated
            (the Cohere SDK always sends one).
    """

    def __init__(self, keys: Sequence[str]) -> None:
        self._digests = [(_digest(key), key_fingerprint(key)) for key in keys]

    @property
    def enabled(self) -> bool:
        """Whether requests must carry a key."""
        return bool(self._digests)

    def authenticate(self, authorization: str | None) -> str | None:
        """The fingerprint of the caller's key, or ``None`` when authentication is off.

        Raises:
            AuthenticationError: No Bearer key, or an unknown one.
        """
        if not self.enabled:
            return None
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("missing API key: send an 'Authorization: Bearer <key>' "
                                      "header")
        digest = _digest(token.strip())
        match = None
        for known, fingerprint in self._digests:  # no early exit: same time for every key
            if hmac.compare_digest(digest, known):
                match = fingerprint
        if match is None:
            raise AuthenticationError("invalid API key")
        return match


@dataclass(frozen=True)
class Reservation:
    """Tokens taken from a bucket for a request in progress (``bucket`` None: no limit)."""

    bucket: TokenBucket | None
    tokens: int


@dataclass
class TokenBucket:
    """A bucket of ``capacity`` units refilled at ``capacity`` per minute."""

    capacity: float
    level: float
    updated: float

    def refill(self, now: float) -> None:
        """Add what accrued since the last update, up to the capacity."""
        self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / 60)
        self.updated = now

    def seconds_until(self, amount: float) -> float:
        """Seconds until the bucket holds ``amount`` units."""
        return max(0.0, (amount - self.level) * 60 / self.capacity)


class KeyLimits:
    """Per-key requests-per-minute and tokens-per-minute limits (0 disables either).

    Args:
        rpm: Requests per minute per key.
        tpm: Tokens per minute per key.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(self, rpm: int, tpm: int, clock: Clock = time.monotonic) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._requests: dict[str, TokenBucket] = {}
        self._tokens: dict[str, TokenBucket] = {}

    def admit(self, key: str | None) -> None:
        """Take one request from the key's allowance.

        Raises:
            RateLimitError: Over the request or token rate; ``retry_after`` says when to retry.
        """
        if key is None:
            return
        tokens = self._bucket(self._tokens, key, self.tpm)
        if tokens is not None and tokens.level <= 0:
            raise RateLimitError(
                f"rate limit exceeded: {self.tpm} tokens per minute for this API key",
                retry_after=tokens.seconds_until(1))
        requests = self._bucket(self._requests, key, self.rpm)
        if requests is not None:
            if requests.level < 1:
                raise RateLimitError(
                    f"rate limit exceeded: {self.rpm} requests per minute for this API key",
                    retry_after=requests.seconds_until(1))
            requests.level -= 1

    def reserve(self, key: str | None, tokens: int) -> Reservation:
        """Take ``tokens`` (an estimate) from the key's token allowance before the work starts.

        A request larger than the whole per-minute allowance is admitted only when the bucket
        is full, so it is slow rather than impossible.

        Raises:
            RateLimitError: The allowance does not hold ``tokens`` now; ``retry_after`` says
                when it will.
        """
        bucket = None if key is None else self._bucket(self._tokens, key, self.tpm)
        if bucket is None:
            return Reservation(None, 0)
        needed = min(float(tokens), bucket.capacity)
        if bucket.level < needed:
            raise RateLimitError(
                f"rate limit exceeded: {self.tpm} tokens per minute for this API key",
                retry_after=max(1.0, bucket.seconds_until(needed)))
        bucket.level -= tokens
        return Reservation(bucket, tokens)

    def settle(self, reservation: Reservation, used: int) -> None:
        """Replace a reservation by the tokens the request really used."""
        if reservation.bucket is not None:
            reservation.bucket.level += reservation.tokens - used

    def release(self, reservation: Reservation) -> None:
        """Give back the reservation of a request that failed before using the model."""
        self.settle(reservation, 0)

    def charge_tokens(self, key: str | None, tokens: int) -> None:
        """Charge tokens outside a reservation (may overdraw the bucket)."""
        bucket = None if key is None else self._bucket(self._tokens, key, self.tpm)
        if bucket is not None:
            bucket.level -= tokens

    def _bucket(self, buckets: dict[str, TokenBucket], key: str, rate: int) -> TokenBucket | None:
        if rate <= 0:
            return None
        now = self._clock()
        bucket = buckets.setdefault(key, TokenBucket(capacity=rate, level=rate, updated=now))
        bucket.refill(now)
        return bucket


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
