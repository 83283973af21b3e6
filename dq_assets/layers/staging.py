"""Staging layer: typed, cleaned, deduplicated rows, and the quarantine of everything else.

One multi-asset per table, derived from its contract: it writes `staging.<table>` and
`quality.<table>_quarantine` for the same partition(s), so raw = staging + quarantine.
"""

from datetime import datetime, timezone

import dagster as dg
import pyarrow as pa

from dq_assets.checks.monitors import evaluate_monitors, metric_history
from dq_assets.checks.reporting import report
from dq_assets.checks.staging import (
    PartitionCounts,
    evaluate_partitions,
    partition_counts,
    staging_check_defs,
)
from dq_assets.contract.gate import load_gate_config
from dq_assets.contract.tables import SAME_PARTITION, TABLES, Table
from dq_assets.keys import (
    LANDING_FILES_KEY,
    QUALITY_GROUP,
    STAGING_GROUP,
    quarantine_key,
    raw_key,
    staging_key,
)
from dq_assets.layers.common import mark_writes, partition_metadata
from dq_assets.partitions import BACKFILL_POLICY, DAILY, WAREHOUSE_POOL
from dq_assets.rules.cleaning import Validation, open_validation
from dq_assets.rules.monitors import partition_metrics
from dq_assets.rules.profiling import column_profiles, profile_markdown, raw_revenue, revenue
from dq_assets.rules.values import trimmed
from dq_assets.storage.batches import (
    Handover,
    PartitionBatches,
    PartitionReader,
    chunk_producer,
    partition_row_counts,
    partition_slice,
    run_partition_keys,
)
from dq_assets.storage.duckdb.warehouse import connect_duckdb, fetch_arrow
from dq_assets.storage.quality_store import QualityStore


def _ref_input(column: str) -> str:
    return f"ref_{column}"


def build_staging_asset(t: Table) -> dg.AssetsDefinition:
    ins = {"raw_rows": dg.AssetIn(key=raw_key(t.name))}
    for col, ref in t.references:
        # Declared on the same partition: the step itself reads earlier partitions' keys
        # (read_through). A partition mapping to "every earlier partition" would make a
        # backfill of a few days in the UI also target every later day downstream.
        ins[_ref_input(col.name)] = dg.AssetIn(
            key=raw_key(ref.table), metadata={"columns": [ref.column, "ingest_date"]},
            dagster_type=PartitionReader)

    skey, qkey = staging_key(t.name), quarantine_key(t.name)

    @dg.multi_asset(
        name=f"stage_{t.name}",
        ins=ins,
        # after the landing audit: its blocking history check holds staging back while the
        # days before the partition are not loaded (dq_assets.rules.history)
        deps=[LANDING_FILES_KEY],
        outs={
            "staging": dg.AssetOut(
                key=skey,
                metadata=partition_metadata(),
                group_name=STAGING_GROUP,
                description=(
                    f"{t.name}, typed and cleaned per the contract and deduplicated by "
                    f"({', '.join(t.key)}): one row per key and ingest date."
                ),
            ),
            "quarantine": dg.AssetOut(
                key=qkey,
                metadata=partition_metadata(),
                description=(
                    f"Rejected rows of {t.file_name}, as received, with reject_reason, "
                    "reject_reasons and reject_details."
                ),
                group_name=QUALITY_GROUP,
            ),
        },
        check_specs=[d.spec(DAILY) for d in staging_check_defs(t, skey)],
        partitions_def=DAILY,
        backfill_policy=BACKFILL_POLICY,
        pool=WAREHOUSE_POOL,
    )
    def stage(
        context: dg.AssetExecutionContext,
        quality_store: QualityStore,
        raw_rows: PartitionReader,
        **refs: PartitionReader,
    ):
        keys = run_partition_keys(context)
        cfg = load_gate_config()
        conn = connect_duckdb()
        ref_keys = {}
        for col, ref in t.references:
            reader = refs[_ref_input(col.name)]
            received = (reader.read_many(keys) if ref.scope == SAME_PARTITION
                        else reader.read_through(keys[-1]))
            ref_keys[col.name] = _received_keys(conn, received, ref.column)
        counts, revenues, profiles, metrics, failures = {}, {}, {}, {}, []
        mark_writes(context, quality_store, [skey, qkey])
        quarantined: dict[str, pa.Table] = {}  # a partition's, until written with its staging

        def validate_chunk(chunk: list[str], handed: Handover) -> pa.Table:
            """Staging rows of a chunk of partitions; each partition's quarantine waits for
            the write of its staging rows. The raw rows are let go before the staging rows are
            fetched: a big day never holds both (the step's peak memory)."""
            raw = handed.take()
            raw_rows, raw_rev = partition_row_counts(raw, chunk), raw_revenue(conn, t, raw, chunk)
            opened = open_validation(conn, t, raw, ref_keys)
            del raw
            result = Validation(opened.staging(), opened.quarantine, opened.failures)
            counts.update(partition_counts(conn, t, chunk, raw_rows, result))
            revenues.update(revenue(conn, t, raw_rev, result.staging, result.quarantine, chunk))
            profiles.update(column_profiles(conn, t, result.staging, chunk))
            chunk_failures = result.failures.to_pylist()
            failures.extend(chunk_failures)
            metrics.update({k: partition_metrics(t, profiles[k], counts[k].raw_rows, _missing(chunk_failures, k))
                            for k in chunk})
            quarantined.update((k, partition_slice(result.quarantine, k)) for k in chunk)
            return result.staging

        # Written one group of partitions at a time (dq_assets.storage.batches), staging and quarantine
        # of each group in one transaction, which also makes the raw version they were made
        # from current (the raw step wrote it as pending): readers never see a day's staging
        # without its quarantine, nor its raw without both, even after a crash between two
        # steps or two outputs. The staging output's IO manager writes them all.
        quarantine = PartitionBatches.for_asset(context, qkey, quarantined.pop)
        yield dg.Output(
            PartitionBatches.for_asset(
                context, skey, chunk_producer(keys, raw_rows, validate_chunk, hand_over=True),
                describe=lambda k: staging_metadata(counts[k], revenues[k], profiles[k],
                                                    plotted_metrics(t, metrics[k], cfg)),
                together=[quarantine], publishes=[raw_rows.publication()]),
            output_name="staging",
        )
        yield dg.Output(quarantine, output_name="quarantine")
        raw_rows.published()  # committed: the store may drop the raw versions superseded
        now = datetime.now(timezone.utc)
        quality_store.append("partition_profiles", profile_rows(context.run.run_id, t, counts, revenues, now))
        quality_store.append("column_metrics", metric_rows(context.run.run_id, t, metrics, now))
        outcomes = evaluate_partitions(t, skey, cfg, counts, failures,
                                       quality_store.raw_rows_history(t.name))
        outcomes += evaluate_monitors(t, skey, cfg, keys, metric_history(quality_store.column_metrics(t.name)))
        yield from report(context, quality_store, outcomes)

    return stage


PROFILE_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("partition_key", pa.string()), ("table_name", pa.string()),
     ("raw_rows", pa.int64()), ("staging_rows", pa.int64()), ("quarantined_rows", pa.int64()),
     ("revenue_raw", pa.decimal128(38, 6)), ("revenue_clean", pa.decimal128(38, 6)),
     ("revenue_at_risk", pa.decimal128(38, 6)), ("profiled_at", pa.timestamp("us", tz="UTC"))]
)


METRICS_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("partition_key", pa.string()), ("table_name", pa.string()),
     ("column_name", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
     ("profiled_at", pa.timestamp("us", tz="UTC"))]
)


def profile_rows(run_id: str, t: Table, counts: dict[str, PartitionCounts], revenues: dict,
                 now: datetime) -> pa.Table:
    return pa.Table.from_pylist(
        [{"run_id": run_id, "partition_key": k, "table_name": t.name, "raw_rows": c.raw_rows,
          "staging_rows": c.staging_rows, "quarantined_rows": c.quarantined_rows,
          "revenue_raw": revenues[k][0], "revenue_clean": revenues[k][1],
          "revenue_at_risk": revenues[k][2], "profiled_at": now}
         for k, c in counts.items()],
        schema=PROFILE_SCHEMA,
    )


def metric_rows(run_id: str, t: Table, metrics: dict[str, dict], now: datetime) -> pa.Table:
    """quality.column_metrics rows: one per partition, column and metric (all of a run's
    partitions share `now`, which tells a partition's latest profile)."""
    return pa.Table.from_pylist(
        [{"run_id": run_id, "partition_key": k, "table_name": t.name, "column_name": column,
          "metric": metric, "value": value, "profiled_at": now}
         for k, by_metric in metrics.items() for (column, metric), value in sorted(by_metric.items())],
        schema=METRICS_SCHEMA,
    )


def plotted_metrics(t: Table, metrics: dict[tuple[str, str], float], cfg) -> dict[str, float]:
    """The few metrics of a table gate.yaml's `monitors.plotted` names, as `column.metric` ->
    value (absent when the partition has no such value)."""
    names = (cfg.monitors.get("plotted") or {}).get(t.name) or []
    return {name: metrics[key] for name in names
            if (key := tuple(name.split(".", 1))) in metrics}


def _missing(failures: list[dict], partition_key: str) -> dict[str, int]:
    """Per column, the rows of a partition quarantined for a missing required value."""
    return {f["column"]: f["failing_rows"] for f in failures
            if f["reason"] == "missing_required" and f["column"] != "*"
            and f["ingest_date"].isoformat() == partition_key}


def staging_metadata(c: PartitionCounts, revenues: tuple, profile: list[dict],
                     plotted: dict[str, float] | None = None) -> dict:
    """One partition's figures (numeric, so the UI plots them across partitions), the metrics
    gate.yaml plots, and its column profile."""
    meta: dict = {"quarantined_rows": c.quarantined_rows, "landed_rows": c.raw_rows}
    meta |= {name: dg.MetadataValue.float(value) for name, value in (plotted or {}).items()}
    raw_rev, clean_rev, at_risk = revenues
    if raw_rev is not None:
        meta["revenue_raw"] = float(raw_rev)
        meta["revenue_clean"] = float(clean_rev)
        meta["revenue_at_risk"] = float(at_risk)
    meta["profile"] = dg.MetadataValue.md(profile_markdown(profile))
    return meta


def _received_keys(conn, received: pa.Table, column: str) -> pa.Table:
    """The trimmed, non-blank keys received, with their ingest date: what `validate` resolves
    references against (it keeps one row per key and scope itself)."""
    conn.register("_keys", received)
    keys = fetch_arrow(conn, f"""SELECT {trimmed(f'"{column}"')} AS key, ingest_date
                                 FROM _keys WHERE key IS NOT NULL""")
    conn.unregister("_keys")
    return keys


staging_assets = [build_staging_asset(t) for t in TABLES]
__all__ = ["staging_assets", "staging_key", "quarantine_key", "DAILY"]
