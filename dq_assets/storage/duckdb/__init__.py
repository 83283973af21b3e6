"""The embedded default: the DuckDB warehouse file."""
