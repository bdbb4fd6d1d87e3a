"""INTERIM: the harvest engine's checkpoint API, with a test stand-in until it lands in `main`."""
# ruff: noqa: F401

try:
    from autointerp.harvest import (
        Harvester,
        finalize,
        load_checkpoint,
        save_checkpoint,
        summarize,
    )
except ImportError:
    from tests.daemon.interim import (
        Harvester,
        finalize,
        load_checkpoint,
        save_checkpoint,
        summarize,
    )
