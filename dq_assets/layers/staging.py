"""Staging layer: typed, cleaned, deduplicated rows, and the quarantine of everything else.

One multi-asset per table, derived from its contract: it writes `staging.<table>` and
`quality.<table>_quarantine` for the same partition(s), so raw = staging + quarantine.
"""


import dagster as dg
import pandas as pd
import pyarrow as pa

from dq_assets.cleaning import validate
from dq_assets.contracts import SAME_PARTITION, TABLES, Table
from dq_assets.duck import connect_duckdb, to_arrow, to_pandas
from dq_assets.layers.raw import raw_key
from dq_assets.settings import DAILY

STAGING_GROUP = "staging"

# "This partition or any earlier one": every upstream partition up to the downstream one.
# (A window reaching back before the first partition is clipped to the partitions that exist.)
UP_TO_PARTITION_MAPPING = dg.TimeWindowPartitionMapping(
    start_offset=-100_000, end_offset=0, allow_nonexistent_upstream_partitions=True
)


def staging_key(table_name: str) -> dg.AssetKey:
    return dg.AssetKey(["staging", table_name])


def quarantine_key(table_name: str) -> dg.AssetKey:
    return dg.AssetKey(["quality", f"{table_name}_quarantine"])


def _ref_input(column: str) -> str:
    return f"ref_{column}"


def build_staging_asset(t: Table) -> dg.AssetsDefinition:
    ins = {"raw_rows": dg.AssetIn(key=raw_key(t.name))}
    for col, ref in t.references:
        ins[_ref_input(col.name)] = dg.AssetIn(
            key=raw_key(ref.table),
            metadata={"columns": [ref.column, "ingest_date"]},
            partition_mapping=None if ref.scope == SAME_PARTITION else UP_TO_PARTITION_MAPPING,
        )

    @dg.multi_asset(
        name=f"stage_{t.name}",
        ins=ins,
        outs={
            "staging": dg.AssetOut(
                key=staging_key(t.name),
                metadata={"partition_expr": "ingest_date"},
                group_name=STAGING_GROUP,
                description=(
                    f"{t.name}, typed and cleaned per the contract and deduplicated by "
                    f"({', '.join(t.key)}): one row per key and ingest date."
                ),
            ),
            "quarantine": dg.AssetOut(
                key=quarantine_key(t.name),
                metadata={"partition_expr": "ingest_date"},
                description=(
                    f"Rejected rows of {t.file_name}, as received, with reject_reason, "
                    "reject_reasons and reject_details."
                ),
                group_name="quality",
            ),
        },
        partitions_def=DAILY,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def stage(context: dg.AssetExecutionContext, raw_rows: pd.DataFrame, **refs: pd.DataFrame):
        conn = connect_duckdb()
        ref_keys = {}
        for col, ref in t.references:
            keys = refs[_ref_input(col.name)]
            ref_keys[col.name] = _received_keys(conn, keys, ref.column)
        staging, quarantine = validate(conn, t, to_arrow(raw_rows), ref_keys)
        reasons = (
            quarantine.group_by("reject_reason").aggregate([("reject_reason", "count")]).to_pylist()
        )
        context.log.info(
            f"{t.name}: {raw_rows.shape[0]} raw = {staging.num_rows} staging + "
            f"{quarantine.num_rows} quarantined {({r['reject_reason']: r['reject_reason_count'] for r in reasons})}"
        )
        yield dg.Output(to_pandas(staging), output_name="staging")
        yield dg.Output(to_pandas(quarantine), output_name="quarantine")

    return stage


def _received_keys(conn, frame: pd.DataFrame, column: str) -> pa.Table:
    """Distinct trimmed, non-blank keys received per ingest date."""
    conn.register("_keys", to_arrow(frame))
    keys = conn.sql(
        f"""SELECT DISTINCT NULLIF(trim("{column}", ' \t\r\n'), '') AS key, ingest_date
            FROM _keys WHERE key IS NOT NULL"""
    ).to_arrow_table()
    conn.unregister("_keys")
    return keys


staging_assets = [build_staging_asset(t) for t in TABLES]
__all__ = ["staging_assets", "staging_key", "quarantine_key", "DAILY"]
