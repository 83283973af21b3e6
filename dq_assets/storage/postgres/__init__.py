"""PostgreSQL (RDS in production): the IO manager and the quality store.

- `connection`: errors (`PostgresError`), settings from the environment or an AWS Secrets
  Manager secret (`resolve_settings`), and the `PostgresConnection` resource;
- `tables`: typed table I/O, Arrow <-> PostgreSQL (`pg_type`, `arrow_type`), `write_table` and
  `read_table` with COPY, partition replacement, the current raw versions;
- `io_manager`: the Dagster DbIOManager plumbing (DbClient, type handlers, `PostgresIOManager`);
- `quality_store`: `PostgresQualityStore` and its one-transaction `PostgresPublication`.
"""
