"""How often and how long to retry, and what a server's `retry-after` asks for."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass


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
