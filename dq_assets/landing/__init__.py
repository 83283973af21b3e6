"""The landing zone, where each day's CSV files and their manifest arrive.

- `zone`       the layout (`ingest_date=YYYY-MM-DD/`), the manifest, the local and S3 stores,
               the `LandingZone` resource, a file's sha256.
- `csv_files`  reading one file into raw rows: its header, the contract columns as text,
               physical line numbers, and DuckDB's errors said in one line.
"""
