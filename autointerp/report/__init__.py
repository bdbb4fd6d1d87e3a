"""Browse a run's labels: a static site (`autointerp report`) and a live server (`serve`).

Reads the run directory through `store` and `schemas` only, and imports no torch: it runs on a
laptop beside a copied run directory, or beside a daemon that is still labelling.
"""
