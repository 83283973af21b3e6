"""PostgreSQL (RDS in production): the IO manager and the quality store."""
