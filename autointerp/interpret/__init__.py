"""Prompting, labellers, rate limiting and pricing. Knows nothing of torch."""
