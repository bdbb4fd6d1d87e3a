"""Label scoring: scorers that test a label on held-out windows, and the statistics they report."""
