"""A snapshot of a client's traffic, for the dashboard and the summaries."""

from __future__ import annotations

import msgspec


class BatchProgress(msgspec.Struct):
    """Where `--batch` stands: batches of this run directory, and this start's entries."""

    submitted: int = 0
    """Batches the server accepted (earlier starts included)."""
    in_progress: int = 0
    ended: int = 0
    unresolved: int = 0
    """Submissions whose answer was lost: being looked up on the server before any resubmission."""
    queued: int = 0
    """Requests waiting to be grouped into the next batch."""
    waiting: int = 0
    """Requests of this start waiting for their batch's results."""
    eta_s: float | None = None
    """Until the open batches end, from how long this run's batches took (None: none ended yet)."""


class ClientStats(msgspec.Struct):
    """Every field is cheap to compute; built fresh on every call."""

    in_flight: int = 0
    concurrency_limit: int = 0
    requests: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    requests_per_minute: float = 0.0
    tokens_per_minute: float = 0.0
    ratelimit_requests_remaining: int | None = None
    ratelimit_tokens_remaining: int | None = None
    paused_until: float | None = None
    last_error: str | None = None
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_known: bool = True
    """False once a model with an unknown price answered: `cost_usd` is then a floor."""
    ratelimit_input_tokens_remaining: int | None = None
    ratelimit_output_tokens_remaining: int | None = None
    budget_requests_remaining: float | None = None
    """Left in our own `--max-rpm` window (None: no such budget); likewise the token budgets."""
    budget_input_tokens_remaining: float | None = None
    budget_output_tokens_remaining: float | None = None
    pending_cost_usd: float = 0.0
    """Estimated cost of requests sent but not yet answered (batches): counted against budgets."""
    batch: BatchProgress | None = None
    """Set by the batch client (`--batch`)."""
