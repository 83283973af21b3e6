"""Alerts on failed checks, failed runs and freshness changes.

- `model`     the `Alert`, the `Sink` protocol, `AlertDeliveryError`, the settings' names,
              grouping per run and the links into the Dagster UI (`run_url`, `ui_base_url`).
- `messages`  how a group reads: title, Slack blocks and text, the JSON document, SNS subject.
- `delivery`  `deliver` (never raises: returns the failures) and `sinks_from_env`, which builds
              the sinks named in `DQ_ALERT_SINKS` from the environment.
- `sinks`     the four sinks: jsonl, webhook, Slack, SNS.
"""
