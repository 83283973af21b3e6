"""S3: the raw layer as parquet objects, and the S3 client shared with the landing zone."""
