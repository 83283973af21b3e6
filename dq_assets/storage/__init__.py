"""Where data lives, one sub-package per backend, and the SQL safety they share. Storage
knows tables, partitions and Arrow, never the warehouse's domain (contracts, rules, checks)."""
