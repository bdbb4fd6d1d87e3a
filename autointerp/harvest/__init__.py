"""Accumulate per-component statistics on the device, checkpoint them, finalize records."""
