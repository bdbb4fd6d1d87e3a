"""autointerp: harvest SPD component statistics and label every component with Claude."""

__version__ = "0.1.0"
