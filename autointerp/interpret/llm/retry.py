"""How often and how long to retry, and what a server's `retry-after` asks for."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass

from autointerp.interpret.llm.errors import FatalAPIError, Transient


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    """Attempts per request on transient errors: 429, 529, 5xx, timeouts, dropped connections."""
    max_content_attempts: int = 3
    """Attempts per request when the answer is unusable: refusal, max_tokens, invalid JSON."""
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    unreachable_give_up_s: float = 10.0
    """While no request has ever got through, connection failures (refused, DNS, TLS) for this
    long stop the run: retrying every item for minutes would only repeat the same failure."""


MAX_RETRY_AFTER_S = 900.0
"""A `retry-after` longer than this is capped (a misconfigured proxy must not park the run)."""


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """`retry-after-ms`, else `retry-after` (seconds or an HTTP date); None when absent."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Reachability:
    """Connection failures (refused, DNS, TLS) while nothing has ever got through stop the run
    after `give_up_s`, naming the URL: a wrong `--base-url` or a missing network would otherwise
    be retried for every item (or, with batches, forever). Once anything got through, a
    connection failure is a blip and is retried like a 5xx."""

    def __init__(self, give_up_s: float) -> None:
        self.give_up_s = give_up_s
        self.ever_answered = False
        self.since: float | None = None
        """When the first connection failure (with nothing ever answered) happened."""

    def answered(self) -> None:
        self.ever_answered = True
        self.since = None

    def check(self, e: Transient, now: float) -> FatalAPIError | None:
        """The error that stops the run, once connections have failed for `give_up_s`."""
        if not e.unreachable or self.ever_answered:
            return None
        if self.since is None:
            self.since = now
        waited = now - self.since
        if waited < self.give_up_s:
            return None
        return FatalAPIError(
            f"{e.reason}; no request has got through in {waited:.0f} s. Check --base-url (or "
            "the provider's base-URL variable, e.g. ANTHROPIC_BASE_URL) and the network"
        )

    def deadline(self, e: Transient) -> float | None:
        """When `check` will give up on this kind of failure (None: it will not)."""
        if not e.unreachable or self.ever_answered or self.since is None:
            return None
        return self.since + self.give_up_s
