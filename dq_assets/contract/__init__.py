"""The product specification as data: the six tables and their rules, the gate's
configuration and suppressions. No Dagster, no storage."""
