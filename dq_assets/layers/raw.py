"""Raw layer: each landed file as received (text), with lineage; plus the landing audit."""


import json
from datetime import date

import dagster as dg
import pandas as pd
import pyarrow as pa

from dq_assets.batches import PartitionBatches
from dq_assets.checks import (
    evaluate_landing,
    evaluate_unexpected_files,
    load_gate_config,
    raw_check_defs,
    report,
)
from dq_assets.cleaning import parse_decimal, trimmed
from dq_assets.contracts import TABLES, Table, table
from dq_assets.duck import connect_duckdb, to_pandas
from dq_assets.landing import (
    FileSchema,
    LandingError,
    LandingZone,
    empty_raw,
    read_csv_file,
    read_header,
    sha256_of,
    table_of_file,
)
from dq_assets.quality_store import QualityStore
from dq_assets.settings import DAILY

RAW_GROUP = "raw"
RAW_IO_MANAGER = "raw_io_manager"  # S3 in the aws deployment, the warehouse otherwise
LANDING_FILES_KEY = dg.AssetKey(["raw", "landing_files"])


def raw_key(table_name: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", table_name])


def partition_asset_args(group: str) -> dict:
    """What every daily asset of the warehouse shares."""
    return dict(
        partitions_def=DAILY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=group,
    )


def build_raw_asset(t: Table) -> dg.AssetsDefinition:
    key = raw_key(t.name)
    check_defs = raw_check_defs(t, key)

    @dg.asset(
        key=key,
        io_manager_key=RAW_IO_MANAGER,
        metadata={"partition_expr": "ingest_date"},
        description=(
            f"`{t.file_name}` of each ingest date as received: every value as text, columns "
            "matched by name, unknown columns kept as JSON in `extra_columns`, and lineage "
            "(ingest_date, source_file, source_line, loaded_at). Checked against the manifest."
        ),
        check_specs=[d.spec(DAILY) for d in check_defs],
        **partition_asset_args(RAW_GROUP),
    )
    def raw_table(
        context: dg.AssetExecutionContext, landing: LandingZone, quality_store: QualityStore
    ):
        cfg = load_gate_config()
        conn = connect_duckdb()
        outcomes = []

        def produce(partition_key: str) -> pa.Table:
            try:
                data, outcome = _load_partition(conn, landing, t, key, partition_key, cfg)
            except LandingError as e:
                raise dg.Failure(description=str(e)) from None
            outcomes.extend(outcome)
            return data

        # The IO manager stores each partition as it is read: one file in memory at a time.
        yield dg.Output(PartitionBatches(context.partition_keys, produce))
        yield from report(context, quality_store, outcomes)

    return raw_table


def _load_partition(conn, landing: LandingZone, t: Table, key, partition_key: str, cfg):
    manifest = landing.manifest(partition_key)
    listed = manifest.files.get(t.file_name)
    with landing.local_file(partition_key, t.file_name) as path:
        if path is None:
            data, schema, sha = empty_raw(conn, t), None, None
        else:
            data, schema = read_csv_file(conn, path, t, partition_key, t.file_name)
            sha = sha256_of(path)
    landed_sum = None
    if t.manifest_sum and path is not None:
        conn.register("_landed", data)
        landed_sum = conn.execute(
            f"SELECT coalesce(sum(coalesce({parse_decimal(trimmed(t.manifest_sum[0]))}, 0)), 0) "
            "FROM _landed"
        ).fetchall()[0][0]
        conn.unregister("_landed")
    outcomes = evaluate_landing(
        t, key, partition_key, cfg,
        listed=listed if isinstance(listed, dict) else None,
        present=path is not None,
        landed_rows=data.num_rows,
        landed_sha256=sha,
        landed_sum=landed_sum,
        missing_columns=schema.missing if schema and schema.header else [],
        unknown_columns=schema.unknown if schema else [],
    )
    return data, outcomes


@dg.asset(
    key=LANDING_FILES_KEY,
    io_manager_key=RAW_IO_MANAGER,
    metadata={"partition_expr": "ingest_date"},
    description=(
        "One row per file of each ingest date (every contract table, every file present, every "
        "file the manifest lists): listed, present, the manifest's control totals, the landed "
        "file's sha256 and size, and its header against the contract."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "no_unexpected_files", asset=LANDING_FILES_KEY, partitions_def=DAILY,
            description="Every landed or listed file is one of the six contract tables.",
        )
    ],
    **partition_asset_args(RAW_GROUP),
)
def landing_files(
    context: dg.AssetExecutionContext, landing: LandingZone, quality_store: QualityStore
):
    rows = []
    for key in context.partition_keys:
        try:
            manifest = landing.manifest(key)
            present = set(landing.present_files(key))
            names = sorted(set(manifest.files) | present | {t.file_name for t in TABLES})
            for name in names:
                rows.append(_file_row(landing, key, name, manifest.files.get(name), name in present))
        except LandingError as e:
            raise dg.Failure(description=str(e)) from None
    frame = pd.DataFrame(rows, columns=list(LANDING_FILE_COLUMNS))
    frame = to_pandas(pa.Table.from_pandas(frame, schema=LANDING_FILES_SCHEMA, preserve_index=False))
    yield dg.Output(frame, metadata={"files": len(frame)})
    cfg = load_gate_config()
    outcomes = [
        evaluate_unexpected_files(
            LANDING_FILES_KEY, key, cfg,
            [r["file_name"] for r in rows if r["ingest_date"].isoformat() == key and r["table_name"] is None],
        )
        for key in context.partition_keys
    ]
    yield from report(context, quality_store, outcomes)


LANDING_FILES_SCHEMA = pa.schema(
    [
        ("ingest_date", pa.date32()),
        ("file_name", pa.string()),
        ("table_name", pa.string()),  # NULL for a file that is no contract table
        ("listed", pa.bool_()),
        ("present", pa.bool_()),
        ("manifest_rows", pa.string()),  # as written in the manifest; checks parse them
        ("manifest_sha256", pa.string()),
        ("manifest_sum_field", pa.string()),
        ("manifest_sum", pa.string()),
        ("landed_sha256", pa.string()),
        ("landed_bytes", pa.int64()),
        ("header", pa.string()),  # JSON list of the header as sent
        ("missing_columns", pa.string()),  # comma-separated contract columns absent
        ("unknown_columns", pa.string()),  # comma-separated columns not in the contract
    ]
)
LANDING_FILE_COLUMNS = tuple(LANDING_FILES_SCHEMA.names)


def _file_row(landing: LandingZone, key: str, name: str, listed: dict | None, present: bool) -> dict:
    table_name = table_of_file(name)
    t = table(table_name) if table_name else None
    sum_field = t.manifest_sum[1] if t and t.manifest_sum else None
    row = {
        "ingest_date": date.fromisoformat(key),
        "file_name": name,
        "table_name": table_name,
        "listed": listed is not None,
        "present": present,
        "manifest_rows": _text(listed.get("rows")) if listed else None,
        "manifest_sha256": _text(listed.get("sha256")) if listed else None,
        "manifest_sum_field": sum_field,
        "manifest_sum": _text(listed.get(sum_field)) if listed and sum_field else None,
        "landed_sha256": None,
        "landed_bytes": None,
        "header": None,
        "missing_columns": None,
        "unknown_columns": None,
    }
    if present:
        with landing.local_file(key, name) as path:
            row["landed_sha256"] = sha256_of(path)
            row["landed_bytes"] = path.stat().st_size
            if t is not None:
                header = read_header(path)
                schema = FileSchema.of(header, t)
                row["header"] = json.dumps(header)
                row["missing_columns"] = ",".join(schema.missing)
                row["unknown_columns"] = ",".join(schema.unknown)
    return row


def _text(value) -> str | None:
    return None if value is None else str(value)


raw_assets = [build_raw_asset(t) for t in TABLES] + [landing_files]
