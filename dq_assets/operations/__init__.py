"""Running the warehouse: jobs, the schedule and sensors, alerts, freshness, the console."""
