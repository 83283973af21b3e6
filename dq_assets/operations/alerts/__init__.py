"""Alerts: the model, delivery, and the sinks (jsonl, webhook, Slack, SNS)."""
