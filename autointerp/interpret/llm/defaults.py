"""Defaults that the CLI needs without importing the anthropic SDK (keeps `--help` fast)."""

DEFAULT_MODEL = "claude-haiku-4-5-20251001"
API_KEY_ENV = "ANTHROPIC_API_KEY"
