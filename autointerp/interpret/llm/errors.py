"""What a model call can end in, as the client's callers see it.

A task (labeller, scorer) records `RequestFailed` as a failure of that one item and goes on;
`FatalAPIError` stops the whole run, because no other item can succeed either (a rejected key,
an exhausted credit, an API that cannot be reached at all).
"""

from __future__ import annotations

from autointerp.interpret.llm.pricing import Usage


class RequestFailed(Exception):
    """This request could not be completed (after retries): record it as failed, go on."""


class FatalAPIError(Exception):
    """No request can succeed (bad key, spend limit, unreachable API): stop with this message."""


class Transient(Exception):
    """Worth another attempt after a backoff (or the server's `retry-after`)."""

    def __init__(
        self,
        reason: str,
        *,
        overload: bool = False,
        rate_limited: bool = False,
        retry_after: float | None = None,
        unreachable: bool = False,
        rejected: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejected = rejected
        """The server answered with an error status (429, 529, 5xx): it did not count the
        request against its rate limit. (A timeout or a dropped connection may have been.)"""
        self.overload = overload
        """529 (or 503): the server is saturated; pause everyone, and lower concurrency when
        it keeps saying so."""
        self.rate_limited = rate_limited
        """429: our budget at the server ran out; pause everyone (its `retry-after`, else a
        backoff). Concurrency is not the cause: the pacing is."""
        self.retry_after = retry_after
        self.unreachable = unreachable
        """No connection could be made (refused, DNS, TLS): fatal if nothing ever got through."""


class Unusable(Exception):
    """A 200 whose text cannot be used (a refusal, a truncated answer); it still cost tokens."""

    def __init__(self, reason: str, used: Usage) -> None:
        super().__init__(reason)
        self.used = used


class InvalidAnswer(ValueError):
    """The model's text does not parse as the task's answer (raised by a task's `parse`)."""


MIN_SECRET_CHARS = 8


def redact(text: str, secret: str) -> str:
    """`text` without the API key (a key too short to be one, such as a placeholder, is left
    alone: replacing it would only garble the text)."""
    return text.replace(secret, "[redacted]") if len(secret) >= MIN_SECRET_CHARS else text
