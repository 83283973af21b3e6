"""Landing checks: each contract file of a day against the day's `_manifest.json`.

On raw.<table> (severity scope: the table's name): file_listed_and_present, file_readable,
manifest_rows, manifest_sha256, manifest_<sum field>, required_columns, unknown_columns. On
raw.landing_files: no_unexpected_files. The layer's raw steps read the files and hand these
functions what they found; `LANDING_FILES_SCHEMA` is the table of that audit.
"""

import json
import re
from decimal import Decimal, InvalidOperation

import dagster as dg
import pyarrow as pa

from dq_assets.checks.model import SAMPLE_KEYS, CheckDef, Outcome, Recon, partition_filter
from dq_assets.contract.gate import GateConfig
from dq_assets.contract.tables import Table
from dq_assets.keys import LANDING_FILES_KEY

# The gate.yaml prefix of raw.landing_files' checks (`landing_files.<check>`); those of
# raw.<table> are prefixed by the table's name.
SEVERITY_SCOPE = "landing_files"

NO_UNEXPECTED_FILES = CheckDef(
    "no_unexpected_files", LANDING_FILES_KEY,
    "Every landed or listed file is one of the six contract tables.")


def raw_check_defs(t: Table, asset: dg.AssetKey) -> list[CheckDef]:
    defs = [
        CheckDef("file_listed_and_present", asset,
                 f"{t.file_name} is present exactly when _manifest.json lists it."),
        CheckDef("file_readable", asset,
                 f"{t.file_name} can be read as the contract's CSV (UTF-8, one header of distinct "
                 "names, RFC 4180 quoting, every row as many fields as the header). One that "
                 "cannot lands no row and fails its own day only."),
        CheckDef("manifest_rows", asset, "Landed data rows equal the manifest's `rows`."),
        CheckDef("manifest_sha256", asset, "The file's sha256 equals the manifest's."),
        CheckDef("required_columns", asset, "Every contract column is in the file's header."),
        CheckDef("unknown_columns", asset,
                 "No column outside the contract (schema drift; kept in raw as extra_columns)."),
    ]
    if t.manifest_sum:
        column, sum_field = t.manifest_sum
        defs.insert(3, CheckDef(f"manifest_{sum_field}", asset,
                                f"Sum of `{column}` as landed (unparseable = 0) equals the "
                                f"manifest's `{sum_field}`."))
    return defs


def evaluate_landing(
    t: Table,
    asset: dg.AssetKey,
    partition_key: str,
    cfg: GateConfig,
    *,
    listed: dict | None,
    present: bool,
    landed_rows: int,
    landed_sha256: str | None,
    landed_sum: Decimal | None,
    missing_columns: list[str],
    unknown_columns: list[str],
    unreadable: str | None = None,
) -> list[Outcome]:
    """Landing checks of one table's file in one partition against its manifest entry.
    `unreadable` says why a present file cannot be read (its location, line and problem): then
    only its bytes are compared, and nothing read from it."""
    sev = lambda check: cfg.severity_of(t.name, check)  # noqa: E731
    where = partition_filter(partition_key)
    audit_sql = f"SELECT * FROM raw.landing_files WHERE {where} AND file_name = '{t.file_name}'"
    out = [
        Outcome(
            "file_listed_and_present", asset, partition_key,
            passed=(listed is not None) == present, severity=sev("file_listed_and_present"),
            failing_rows=int((listed is not None) != present),
            observed=f"listed={listed is not None}, present={present}",
            threshold="listed = present",
            detail=("listed in _manifest.json but absent" if listed is not None and not present
                    else "present but not listed in _manifest.json" if present and listed is None
                    else ""),
            sql=audit_sql,
        ),
        Outcome(
            "file_readable", asset, partition_key, passed=unreadable is None,
            severity=sev("file_readable"), failing_rows=int(unreadable is not None),
            observed=unreadable or ("read" if present else "not applicable: file absent"),
            threshold="readable as CSV",
            detail=(f"no row of {t.file_name} landed for {partition_key}: correct the file (or have "
                    "it sent again) and materialize the day again" if unreadable else ""),
            sql=audit_sql,
        ),
    ]
    comparable = listed is not None and present

    def not_read(check: str) -> Outcome:  # what only its rows or header could tell
        return Outcome(check, asset, partition_key, passed=True, severity=sev(check),
                       observed=f"not applicable: {t.file_name} cannot be read")

    def compare(check: str, expected, observed, equal: bool, problem: str | None = None) -> Outcome:
        """Landed vs the manifest; `problem` says what is wrong with the manifest's value
        itself (then there is nothing to compare with)."""
        if not comparable:
            return Outcome(check, asset, partition_key, passed=True, severity=sev(check),
                           observed="not applicable: file not both listed and present")
        if unreadable and check != "manifest_sha256":  # its bytes are there; its rows are not
            return not_read(check)
        if problem:
            field = check.removeprefix("manifest_")
            return Outcome(check, asset, partition_key, passed=False, severity=sev(check),
                           failing_rows=1, observed=f"{observed} landed; the manifest's {field} is {_as_json(expected)}",
                           threshold=f"{field} in _manifest.json: {problem}",
                           detail=f"_manifest.json: {field} of {t.file_name} is {_as_json(expected)}, not {problem}",
                           sql=audit_sql)
        return Outcome(check, asset, partition_key, passed=equal, severity=sev(check),
                       failing_rows=0 if equal else 1, observed=str(observed),
                       threshold=f"= {expected} (manifest)", sql=audit_sql,
                       recons=[Recon(check.removeprefix("manifest_"), f"{t.name} landed vs manifest",
                                     expected, observed)])

    rows_expected = (listed or {}).get("rows")
    rows = _as_count(rows_expected)
    out.append(compare("manifest_rows", rows_expected, landed_rows, rows == landed_rows,
                       problem=None if rows is not None else "a whole number of data rows"))
    sha_expected = (listed or {}).get("sha256")
    sha_ok = isinstance(sha_expected, str) and _SHA256.fullmatch(sha_expected.strip()) is not None
    out.append(compare("manifest_sha256", str(sha_expected).strip().lower(), landed_sha256,
                       str(sha_expected).strip().lower() == (landed_sha256 or ""),
                       problem=None if sha_ok else "64 hexadecimal digits"))
    if t.manifest_sum:
        column, sum_field = t.manifest_sum
        expected = (listed or {}).get(sum_field)
        total = _as_decimal(expected)
        out.append(compare(f"manifest_{sum_field}", expected, landed_sum,
                           total is not None and total == landed_sum,
                           problem=None if total is not None else "a decimal number"))
    if unreadable:
        return out + [not_read("required_columns"), not_read("unknown_columns")]
    out.append(
        Outcome("required_columns", asset, partition_key, passed=not missing_columns,
                severity=sev("required_columns"), failing_rows=len(missing_columns),
                observed=", ".join(missing_columns) or "all present",
                threshold="every contract column", detail=(
                    f"missing from {t.file_name}: {', '.join(missing_columns)}"
                    if missing_columns else ""), sql=audit_sql)
    )
    out.append(
        Outcome("unknown_columns", asset, partition_key, passed=not unknown_columns,
                severity=sev("unknown_columns"), failing_rows=len(unknown_columns),
                observed=", ".join(unknown_columns) or "none", threshold="none",
                detail=(f"not in the contract (kept in raw.{t.name}.extra_columns): "
                        f"{', '.join(unknown_columns)}" if unknown_columns else ""), sql=audit_sql)
    )
    return out


def evaluate_unexpected_files(
    asset: dg.AssetKey, partition_key: str, cfg: GateConfig, unexpected: list[str]
) -> Outcome:
    return Outcome(
        NO_UNEXPECTED_FILES.name, asset, partition_key, passed=not unexpected,
        severity=cfg.severity_of(SEVERITY_SCOPE, NO_UNEXPECTED_FILES.name),
        failing_rows=len(unexpected), observed=", ".join(unexpected) or "none",
        threshold="only the six contract tables", sample_keys=unexpected[:SAMPLE_KEYS],
        detail="files (landed or listed) that are no contract table" if unexpected else "",
        sql=f"SELECT * FROM raw.landing_files WHERE {partition_filter(partition_key)} "
        "AND table_name IS NULL",
    )


# raw.landing_files: one row per file of each day, as the raw step found it (dq_assets.layers.raw).
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


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _as_json(value) -> str:
    """A manifest value as it was written in the JSON (numbers bare, text quoted)."""
    return str(value) if isinstance(value, (int, Decimal)) and not isinstance(value, bool) else json.dumps(value)


def _as_count(value) -> int | None:
    """A manifest's row count: a whole number (a JSON integer, or its digits as text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _as_decimal(value) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None
