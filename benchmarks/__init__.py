"""Benchmarks of dq_assets (outside the test suite): `python -m benchmarks.run [--quick]`."""
