"""The landing zone: its layout, the manifest and reading a CSV file into raw rows."""
