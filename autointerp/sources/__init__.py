"""Where CI values come from: SPD runs, the embedded demo, the synthetic benchmark model."""
