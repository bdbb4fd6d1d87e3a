"""The one-process orchestrator: harvest thread, labelling workers, dashboard, signals."""
