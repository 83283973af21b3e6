"""PostgreSQL (RDS in production): the IO manager and the quality store.

- `connection`: errors (`PostgresError`), settings from the environment or an AWS Secrets
  Manager secret (`resolve_settings`), and the `PostgresConnection` resource (psycopg
  connections, and ADBC sessions opened with the same settings, retries and redaction);
- `session`: `ArrowSession`, one ADBC connection (adbc-driver-postgresql) with its transaction:
  statements, and a table's rows as Arrow in (COPY BINARY) and out;
- `tables`: typed table I/O, Arrow <-> PostgreSQL (`pg_type`, `arrow_type`), `write_table` and
  `read_table` on a session, partition replacement, the current raw versions;
- `io_manager`: the Dagster DbIOManager plumbing (DbClient, type handlers, `PostgresIOManager`);
- `quality_store`: `PostgresQualityStore` and its one-transaction `PostgresPublication`.
"""
