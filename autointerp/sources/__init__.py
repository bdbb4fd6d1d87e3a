"""Where CI values come from: SPD runs and the embedded demo."""
