"""The gate's checks, one module per family, each owning its specs and its evaluation."""
