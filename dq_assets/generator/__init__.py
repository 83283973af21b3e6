"""dq-generate: the test-data generator. Outside the Dagster import chain: it imports the
contract only, and runs where dagster cannot be imported."""
