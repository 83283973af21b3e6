"""Jobs that make the UI flows obvious, and the daily schedule."""

import dagster as dg

# Everything for one ingest date: raw -> staging -> gate -> marts (what CI and the landing
# sensor run). The current-state marts rebuild once per run.
daily_warehouse = dg.define_asset_job(
    "daily_warehouse",
    selection=dg.AssetSelection.all(),
    description="Land, clean, check and publish one daily partition (or a range, in one run).",
)

# One job per layer, for reruns of a part of the flow from the UI.
raw_layer = dg.define_asset_job(
    "raw_layer", selection=dg.AssetSelection.groups("raw"),
    description="Read the landing zone into raw and check it against the manifest. The new raw "
                "rows wait in raw_pending until staging_layer makes them current together with "
                "staging and quarantine.")
staging_layer = dg.define_asset_job(
    "staging_layer", selection=dg.AssetSelection.groups("staging", "quality"),
    description="Clean, deduplicate, quarantine, reconcile and decide the gate.")
marts_layer = dg.define_asset_job(
    "marts_layer", selection=dg.AssetSelection.groups("marts"),
    description="Publish the marts of partitions that passed the gate.")

jobs = [daily_warehouse, raw_layer, staging_layer, marts_layer]
