"""Pure rules: the cleaning SQL generated from a contract, reconciliation and profiling.
No Dagster."""
