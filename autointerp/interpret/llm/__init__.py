"""The LLM client layer: one transport for every task that asks a model something.

`LLMClient.complete(request, parse)` owns what every task needs around one model call: pacing
(request and token budgets, a shared pause on `retry-after`), adaptive concurrency, retries and
error classes, usage, cost and stats, and the API key kept out of every message. A `Provider`
(`anthropic.py`) only turns a `Request` into one HTTP call and classifies what comes back. The
labeller and, later, scorers are render → complete → parse on top of it.
"""
