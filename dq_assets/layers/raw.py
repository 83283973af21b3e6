"""Raw layer: each landed file as received (text), with lineage; plus the landing audit."""


import json
from datetime import date

import dagster as dg
import pyarrow as pa

from dq_assets.checks.history import HISTORY, evaluate_history, loaded_history
from dq_assets.checks.landing import (
    LANDING_FILES_SCHEMA,
    NO_UNEXPECTED_FILES,
    evaluate_landing,
    evaluate_unexpected_files,
    raw_check_defs,
)
from dq_assets.checks.reporting import report
from dq_assets.contract.gate import load_gate_config
from dq_assets.contract.tables import TABLES, Table, table
from dq_assets.keys import LANDING_FILES_KEY, RAW_GROUP, raw_key
from dq_assets.landing.csv_files import FileSchema, empty_raw, read_csv_file, read_header
from dq_assets.landing.zone import LandingError, LandingZone, sha256_of, table_of_file
from dq_assets.layers.common import mark_writes, partition_asset_args
from dq_assets.partitions import DAILY, previous_days, same_days
from dq_assets.rules.history import history_tables
from dq_assets.rules.values import money_sum
from dq_assets.storage.batches import PartitionBatches, run_partition_keys
from dq_assets.storage.duckdb.warehouse import connect_duckdb
from dq_assets.storage.quality_store import QualityStore

RAW_IO_MANAGER = "raw_io_manager"  # S3 in the aws deployment, the warehouse otherwise


def build_raw_asset(t: Table) -> dg.AssetsDefinition:
    key = raw_key(t.name)
    check_defs = raw_check_defs(t, key)

    @dg.asset(
        key=key,
        io_manager_key=RAW_IO_MANAGER,
        description=(
            f"`{t.file_name}` of each ingest date as received: every value as text, columns "
            "matched by name, unknown columns kept as JSON in `extra_columns`, and lineage "
            "(ingest_date, source_file, source_line, loaded_at). Checked against the manifest."
        ),
        check_specs=[d.spec(DAILY) for d in check_defs],
        # a referenced table's day follows its previous day (see landing_files)
        deps=previous_days(key) if t.name in history_tables() else [],
        **partition_asset_args(RAW_GROUP),
    )
    def raw_table(
        context: dg.AssetExecutionContext, landing: LandingZone, quality_store: QualityStore
    ):
        run_partition_keys(context)  # a reversed range: refused before anything is read
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

        mark_writes(context, quality_store, [key])
        # The IO manager stores each partition as it is read: one file in memory at a time. As
        # a pending version: the table's staging step publishes it together with staging and
        # quarantine (dq_assets.storage.batches), so raw = staging + quarantine even if the run dies
        # in between.
        yield dg.Output(PartitionBatches.for_asset(context, key, produce, pending=True))
        yield from report(context, quality_store, outcomes)

    return raw_table


def _load_partition(conn, landing: LandingZone, t: Table, key, partition_key: str, cfg):
    manifest = landing.manifest(partition_key)
    listed = manifest.files.get(t.file_name)
    unreadable = None
    with landing.local_file(partition_key, t.file_name) as path:
        if path is None:
            data, schema, sha = empty_raw(conn, t), None, None
        else:
            sha = sha256_of(path)
            try:
                data, schema = read_csv_file(conn, path, t, partition_key, t.file_name)
            except LandingError as e:
                # A file that cannot be read fails its own day (file_readable), not the run: the
                # other days of a range go on. It lands no row, so raw = staging + quarantine.
                location = f"{landing.partition_path(partition_key)}/{t.file_name}"
                unreadable = f"{location}: {str(e).removeprefix(f'{path}: ')}"
                data, schema = empty_raw(conn, t), None
    landed_sum = None
    if t.manifest_sum and path is not None and not unreadable:
        landed_sum = money_sum(conn, data, t.manifest_sum[0])
    outcomes = evaluate_landing(
        t, key, partition_key, cfg,
        listed=listed if isinstance(listed, dict) else None,
        present=path is not None,
        landed_rows=data.num_rows,
        landed_sha256=sha,
        landed_sum=landed_sum,
        missing_columns=schema.missing if schema and schema.header else [],
        unknown_columns=schema.unknown if schema else [],
        unreadable=unreadable,
    )
    return data, outcomes


@dg.asset(
    key=LANDING_FILES_KEY,
    io_manager_key=RAW_IO_MANAGER,
    description=(
        "One row per file of each ingest date (every contract table, every file present, every "
        "file the manifest lists): listed, present, the manifest's control totals, the landed "
        "file's sha256 and size, and its header against the contract."
    ),
    check_specs=[NO_UNEXPECTED_FILES.spec(DAILY), HISTORY.spec(DAILY)],
    # What history_complete checks, declared for a backfill of several runs: day D's audit
    # follows day D of every table that references resolve against, each of which follows its
    # own previous day, so staging (after the audit) never starts a day whose history is still
    # loading in another run.
    deps=same_days(*(raw_key(t) for t in history_tables())),
    **partition_asset_args(RAW_GROUP),
)
def landing_files(
    context: dg.AssetExecutionContext, landing: LandingZone, quality_store: QualityStore
):
    keys = run_partition_keys(context)
    cfg = load_gate_config()
    history = evaluate_history(LANDING_FILES_KEY, keys, cfg, landing.partitions(),
                               loaded_history(quality_store, keys[0]))
    rows_by_key: dict[str, list[dict]] = {}
    for key in keys:
        try:
            manifest = landing.manifest(key)
            present = set(landing.present_files(key))
            names = sorted(set(manifest.files) | present | {t.file_name for t in TABLES})
            rows_by_key[key] = [_file_row(landing, key, name, manifest.files.get(name), name in present)
                                for name in names]
        except LandingError as e:
            raise dg.Failure(description=str(e)) from None
    unexpected = {k: [r["file_name"] for r in rows if r["table_name"] is None] for k, rows in rows_by_key.items()}

    def produce(key: str) -> pa.Table:
        return pa.Table.from_pylist(rows_by_key[key], schema=LANDING_FILES_SCHEMA)

    mark_writes(context, quality_store, [LANDING_FILES_KEY])
    yield dg.Output(PartitionBatches.for_asset(
        context, LANDING_FILES_KEY, produce,
        describe=lambda k: {"files": len(rows_by_key[k]), "unexpected_files": len(unexpected[k])}))
    outcomes = [evaluate_unexpected_files(LANDING_FILES_KEY, key, cfg, unexpected[key]) for key in keys]
    yield from report(context, quality_store, outcomes + history)


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
            try:
                header = read_header(path) if t is not None else None
            except LandingError:  # no header to record: raw.<table>'s file_readable says why
                header = None
            if header is not None:
                schema = FileSchema.of(header, t)
                row["header"] = json.dumps(header)
                row["missing_columns"] = ",".join(schema.missing)
                row["unknown_columns"] = ",".join(schema.unknown)
    return row


def _text(value) -> str | None:
    return None if value is None else str(value)


raw_assets = [build_raw_asset(t) for t in TABLES] + [landing_files]
