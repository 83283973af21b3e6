"""Freshness: a policy on every asset (windows per layer), and checks for overdue partitions.

Windows and the partition deadline come from the `freshness` section of the gate config
(dq_assets/gate.yaml, overridable with DQ_GATE_CONFIG), read when the code location loads.
"""

from datetime import timedelta

import dagster as dg

from dq_assets.checks import load_gate_config


def layer_policies() -> dict[str, dg.FreshnessPolicy]:
    windows = load_gate_config().freshness["windows"]
    return {
        layer: dg.FreshnessPolicy.time_window(
            fail_window=timedelta(hours=float(w["fail_hours"])),
            warn_window=timedelta(hours=float(w["warn_hours"])),
        )
        for layer, w in windows.items()
    }


def with_freshness_policies(defs: dg.Definitions) -> dg.Definitions:
    """One place applies the policy of its layer (asset group) to every asset."""
    policies = layer_policies()

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        policy = policies.get(spec.group_name or "")
        return dg.apply_freshness_policy(spec, policy) if policy else spec

    return defs.map_asset_specs(func=apply)


def partition_freshness_checks(assets) -> list:
    """A WARN check per daily asset that fails when the latest partition is overdue."""
    cron = load_gate_config().freshness["partition_deadline_cron"]
    return list(dg.build_time_partition_freshness_checks(
        assets=assets, deadline_cron=cron, timezone="UTC", severity=dg.AssetCheckSeverity.WARN))


def freshness_checks_sensor(checks) -> dg.SensorDefinition:
    return dg.build_sensor_for_freshness_checks(
        freshness_checks=checks, name="partition_freshness_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=300)
