"""What each asset's page in the UI tells a user about its table."""
