"""The aws deployment in the benchmark: `python -m benchmarks.run --aws PG_URL`.

Two runs of the same CLI as the big day and the backfill rows, with `DQ_DEPLOYMENT=aws`: one day
of `--aws-orders` orders (`--partition DAY`, the big day's defects) and `--aws-days` clean days
at `--backfill-orders` a day (`--partition-range`, one run). Each run gets:
- S3: a moto server of its own (`moto_server` on a free port), a separate process started here
  and stopped after the run, so its CPU and memory are neither the driver's nor the run's: its
  peak RSS (during the run) and CPU seconds are reported beside the run's;
- the landing zone on that S3 (`DQ_LANDING=s3://dq-bench-landing/landing`): the run's days are
  uploaded with boto3 before the timed run (not timed); the raw layer as parquet in
  `s3://dq-bench-warehouse/warehouse` (`DQ_S3_BUCKET`, `DQ_S3_PREFIX`);
- PostgreSQL for staging, marts and quality: a fresh database on the `--aws` server (`DQ_PG_URL`),
  created before the run and dropped after it (as `--pg-instance` does for Dagster's records);
  Dagster's own records stay in the run's fresh DAGSTER_HOME, as for every other row.

After each run its outputs are compared with the default (DuckDB) deployment's on the same
landing files: the rows per partition of every staging, quarantine and mart table, the revenue
per partition and currency, and the gate decision per partition (`outputs`, `compare`). The
DuckDB run of the same days is the benchmark's own when it has one (the big day of the same size,
the backfill of the same length), else one is run here (measured: it is the comparable figure).
A difference is a failure of the benchmark (exit 1).

`run.py` passes itself in as `bench` (it is usually `__main__`, so this module does not import it).
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from benchmarks.measure import RssSampler

LANDING_BUCKET, LANDING_PREFIX = "dq-bench-landing", "landing"
WAREHOUSE_BUCKET, WAREHOUSE_PREFIX = "dq-bench-warehouse", "warehouse"
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Settings a developer's shell may carry that would point the run elsewhere (a profile, another
# S3 endpoint, a Secrets Manager secret or libpq's PG* variables before DQ_PG_URL)
UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "DQ_PG_SECRET_ID",
         "DQ_PG_SECRET_REGION", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE",
         "PGSERVICE", "PGOPTIONS", "PGSSLMODE")
GATE_COLUMNS = ("gate_passed", "checks_evaluated", "checks_passed", "error_failures",
                "warn_failures", "rows_landed", "rows_staged", "health_score", "revenue_at_risk")
DAY_LABEL = "aws deployment: 1 day x {orders:,} orders (moto S3 + PostgreSQL)"
RANGE_LABEL = "aws deployment: backfill {days} days x {orders:,} orders, one run"



def range_landing(bench, tmp: Path, res: dict, name: str, start, days: int, orders: int, timeout: float) -> Path:
    """The landing zone of `days` days at `orders` a day: the backfill row's when it has them,
    else generated as dataset `name` (land_<name>)."""
    bf = res["datasets"].get("backfill") or {}
    if bf.get("orders_per_day") == orders and bf.get("days", 0) >= days:
        return tmp / "land_backfill"
    res["datasets"][name] = bench.generate(tmp, f"land_{name}", start, days, orders, timeout=timeout)
    return tmp / f"land_{name}"

# ------------------------------------------------------------------ S3: moto in its own process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """`python -m moto.server` (moto_server) on 127.0.0.1 and a free port, in its own process (and session); stopped,
    by its pid, on exit. `during()` measures its peak RSS and CPU seconds over a block."""

    def __init__(self, log: Path):
        self.log, self.proc, self.endpoint = log, None, None

    def __enter__(self) -> Self:
        for module, extra in (("moto.server", "moto[server], the dev extra"), ("psutil", "the bench extra")):
            if importlib.util.find_spec(module.split(".")[0]) is None:
                raise RuntimeError(f"--aws needs {module} ({extra})")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a free port can be taken between the probe and the bind
            port = free_port()
            cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            self.endpoint = f"http://127.0.0.1:{port}"
            if self._ready():
                return self
            self._stop()
        raise RuntimeError(f"moto_server did not start; see {self.log}")

    def _ready(self, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                self.client().list_buckets()
                return True
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.2)
        return False

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                            config=Config(retries={"max_attempts": 2}, connect_timeout=2))

    def cpu_s(self) -> float:
        import psutil

        p = psutil.Process(self.proc.pid)
        t = p.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    @contextmanager
    def during(self, into: dict):
        """Moto's peak RSS (psutil, 50 ms) and CPU seconds while the block runs, into `into`."""
        cpu0, rss0 = self.cpu_s(), _rss_mib(self.proc.pid)
        with RssSampler(self.proc.pid) as sampler:
            yield
        into.update({"peak_rss_mib": sampler.peak_mib, "rss_before_mib": rss0,
                     "cpu_s": round(self.cpu_s() - cpu0, 2)})

    def _stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # the process started here, by its pid
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc) -> None:
        self._stop()


def _rss_mib(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def upload(client, landing: Path, days: list[str]) -> dict:
    """The days' landing folders into s3://LANDING_BUCKET/LANDING_PREFIX/ (not timed)."""
    t0 = time.perf_counter()
    client.create_bucket(Bucket=LANDING_BUCKET)
    client.create_bucket(Bucket=WAREHOUSE_BUCKET)
    files, size = 0, 0
    for day in days:
        folder = landing / f"ingest_date={day}"
        for path in sorted(folder.iterdir()):
            client.upload_file(str(path), LANDING_BUCKET,
                               f"{LANDING_PREFIX}/{folder.name}/{path.name}")
            files, size = files + 1, size + path.stat().st_size
    return {"files": files, "mib": round(size / 2**20, 1), "s": round(time.perf_counter() - t0, 1)}


def stored(client, bucket: str) -> dict:
    """Objects and MiB in a bucket (the raw layer's parquet after a run)."""
    n, size = 0, 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            n, size = n + 1, size + o["Size"]
    return {"objects": n, "mib": round(size / 2**20, 1)}


def run_env(endpoint: str, pg_url: str) -> dict[str, str | None]:
    """The aws deployment's settings for one run (None: removed from the environment)."""
    env: dict[str, str | None] = {name: None for name in UNSET}
    env.update(CREDENTIALS)
    env.update({
        "DQ_DEPLOYMENT": "aws",
        "DQ_LANDING": f"s3://{LANDING_BUCKET}/{LANDING_PREFIX}",
        "DQ_S3_BUCKET": WAREHOUSE_BUCKET, "DQ_S3_PREFIX": WAREHOUSE_PREFIX,
        "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "DQ_PG_URL": pg_url,
    })
    return env


def database_url(server_url: str, database: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))


# ------------------------------------------------------------------ outputs, compared


def outputs(execute, keys: list[str]) -> dict:
    """What a warehouse holds for the partitions `keys`, through `execute(sql) -> rows` (DuckDB or
    PostgreSQL): the rows per partition of every staging, quarantine and mart table (0 when it has
    none; one count, `all`, for a table without ingest_date), the revenue per partition and
    currency, the latest gate decision per partition and the latest outcome of every check."""
    tables = [(s, t) for s, t in execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema IN ('staging', 'quality', 'marts')")
        if s != "quality" or t.endswith("_quarantine")]
    rows: dict[str, dict] = {}
    for schema, table in sorted(tables):
        columns = {c for (c,) in execute(
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_schema = '{schema}' AND table_name = '{table}'")}
        name = f'"{schema}"."{table}"'
        if "ingest_date" in columns:
            counts = {str(k): n for k, n in execute(f"SELECT ingest_date, count(*) FROM {name} GROUP BY 1")}
            rows[f"{schema}.{table}"] = {k: counts.pop(k, 0) for k in keys} | dict(sorted(counts.items()))
        else:
            rows[f"{schema}.{table}"] = {"all": execute(f"SELECT count(*) FROM {name}")[0][0]}
    revenue = {f"{k} {cur}": _num(v) for k, cur, v in sorted(execute(
        "SELECT ingest_date, currency, sum(revenue) FROM marts.fact_revenue_daily GROUP BY 1, 2"))}
    gate = {k: None for k in keys}
    for row in execute(f"SELECT ingest_date, {', '.join(GATE_COLUMNS)} FROM ("
                       "SELECT *, row_number() OVER (PARTITION BY ingest_date ORDER BY decided_at DESC) AS rn "
                       "FROM quality.partition_gate) g WHERE rn = 1"):
        gate[str(row[0])] = {c: _num(v) for c, v in zip(GATE_COLUMNS, row[1:])}
    checks = {f"{k} {asset}:{check}": [passed, severity, n] for k, asset, check, passed, severity, n in execute(
        "SELECT partition_key, asset_key, check_name, passed, severity, failing_rows FROM ("
        "SELECT *, row_number() OVER (PARTITION BY partition_key, asset_key, check_name "
        "ORDER BY evaluated_at DESC) AS rn FROM quality.check_results) c WHERE rn = 1")}
    return {"rows": rows, "revenue": revenue, "gate": gate, "checks": dict(sorted(checks.items()))}


def _num(v):
    """Exact decimals as their shortest text (NUMERIC(38,6) and DECIMAL print other scales)."""
    if isinstance(v, Decimal):
        return format(v.normalize(), "f") if v else "0"
    return v


def duckdb_outputs(warehouse: Path, keys: list[str]) -> dict:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return outputs(lambda sql: conn.execute(sql).fetchall(), keys)


def pg_outputs(url: str, keys: list[str]) -> dict:
    import psycopg

    with psycopg.connect(url) as conn:
        return outputs(lambda sql: conn.execute(sql).fetchall(), keys)


def compare(duck: dict, aws: dict) -> dict:
    """Every value of the DuckDB run's outputs against the aws run's: the differences, and how
    many values of each kind were compared."""
    differ, compared = [], Counter()
    for part in ("rows", "revenue", "gate", "checks"):
        a, b = duck.get(part, {}), aws.get(part, {})
        for key in sorted(set(a) | set(b)):
            if part == "rows":
                x, y = a.get(key, {}), b.get(key, {})
                for k in sorted(set(x) | set(y)):
                    compared[part] += 1
                    if x.get(k) != y.get(k):
                        differ.append(f"{key} {k}: DuckDB {x.get(k)}, aws {y.get(k)}")
            else:
                compared[part] += 1
                if a.get(key) != b.get(key):
                    differ.append(f"{part} {key}: DuckDB {a.get(key)}, aws {b.get(key)}")
    gate = [g for g in aws.get("gate", {}).values() if g]
    return {"compared": dict(compared), "tables": len(duck.get("rows", {})), "partitions": len(gate),
            "gate_passed": sum(1 for g in gate if g.get("gate_passed")),
            "differences": differ, "agree": not differ and compared["rows"] > 0 and bool(gate)}


# ------------------------------------------------------------------ the rows


def run_rows(bench, tmp: Path, args, res: dict, start, checkpoint) -> None:
    """The aws day and the aws range, each with the DuckDB run it is compared with."""
    quick = res["params"]["quick"]
    orders = args.aws_orders or (2_000 if quick else 100_000)
    days = args.aws_days or (3 if quick else 30)
    bf_orders = res["params"]["backfill_orders"]
    day = start.isoformat()
    res["params"].update({"aws": True, "aws_orders": orders, "aws_days": days,
                          "aws_pg_server": urlsplit(args.aws).netloc.rpartition("@")[2]})
    out = res.setdefault("aws", {})

    # -- one day of N orders (the big day's defects), as the big day row runs it
    if res["datasets"].get("big_day", {}).get("orders_per_day") == orders:
        landing = tmp / "land_big"
    else:
        landing = tmp / "land_aws_day"
        res["datasets"]["aws_day"] = bench.generate(tmp, landing.name, start, 1, orders, bench.DEFECTS,
                                                    args.defect_rate, args.timeout)
    big = res["runs"].get("big_day")
    ref = "big_day" if big and big.get("ok") and landing.name == "land_big" else "aws_day_duckdb"
    out["day"] = one(bench, tmp, args, res, "aws_day", landing, [day], ref,
                     label=DAY_LABEL.format(orders=orders), partition=day)
    checkpoint("aws day")

    # -- D days at the backfill's orders a day, one run
    rng = bench.day_range(start, days)
    keys = [(start + timedelta(days=i)).isoformat() for i in range(days)]
    landing = range_landing(bench, tmp, res, "aws_range", start, days, bf_orders, args.timeout)
    mine = res["runs"].get(f"backfill_{days}")
    ref = f"backfill_{days}" if mine and mine.get("ok") and landing.name == "land_backfill" \
        else f"aws_backfill_{days}_duckdb"
    out["range"] = one(bench, tmp, args, res, f"aws_backfill_{days}", landing, keys, ref,
                       label=RANGE_LABEL.format(days=days, orders=bf_orders), partition_range=rng)
    checkpoint(f"aws {days} days")


def one(bench, tmp: Path, args, res: dict, name: str, landing: Path, keys: list[str], ref: str,
        label: str, **partitions) -> dict:
    """One aws run (its own moto server and PostgreSQL database) and its comparison with the
    DuckDB run `ref` (run here first when the benchmark has none)."""
    entry = {"run": name, "label": label, "duckdb_run": ref, "landing": landing.name}
    if ref not in res["runs"]:
        bench.log(f"{name}: the default deployment (DuckDB) on the same landing files, to compare with")
        res["runs"][ref] = bench.materialize(tmp, ref, "dq_assets", landing, timeout=args.timeout,
                                             **partitions)
    bench.log(f"{label} ({', '.join(f'{k} {v}' for k, v in partitions.items())})")
    try:
        with MotoServer(tmp / "logs" / f"moto_{name}.log") as moto, \
                bench.PgInstance(args.aws, name) as db:
            client = moto.client()
            entry["upload"] = upload(client, landing, keys)
            bench.log(f"  uploaded {entry['upload']['files']} landing files "
                      f"({entry['upload']['mib']:,} MiB) to moto in {entry['upload']['s']} s (not timed)")
            url = database_url(args.aws, db.database)
            moto_use: dict = {}
            with moto.during(moto_use):
                run = bench.materialize(tmp, name, "dq_assets", f"s3://{LANDING_BUCKET}/{LANDING_PREFIX}",
                                        timeout=args.timeout, extra_env=run_env(moto.endpoint, url),
                                        **partitions)
            run["moto"] = moto_use
            bench.log(f"  moto: peak RSS {moto_use['peak_rss_mib'] or 0:,.0f} MiB during the run, "
                      f"{moto_use['cpu_s']} s CPU")
            res["runs"][name] = run
            entry["s3_raw"] = stored(client, WAREHOUSE_BUCKET)
            if run["ok"]:
                entry["pg_database_mib"] = _pg_size_mib(url)
                aws_out = pg_outputs(url, keys)
                entry["rows"] = aws_out["rows"]  # the aws run's rows per table and partition
    except Exception as e:  # noqa: BLE001 - a failed row of the report, not a crash
        entry["error"] = f"{type(e).__name__}: {e}"
        bench.log(f"  FAILED: {entry['error']}")
        return entry
    base = res["runs"][ref]
    if run["ok"] and base.get("ok"):
        entry["comparison"] = cmp = compare(
            duckdb_outputs(Path(base["run_dir"]) / "warehouse.duckdb", keys), aws_out)
        bench.log(f"  outputs vs DuckDB ({ref}): {describe(cmp)}")
    return entry


def describe(cmp: dict) -> str:
    if not cmp["agree"]:
        return f"{len(cmp['differences'])} DIFFER: " + "; ".join(cmp["differences"][:8])
    n = cmp["compared"]
    return (f"the same: {n.get('rows', 0):,} row counts ({cmp['tables']} staging, quarantine and mart "
            f"tables per partition), {n.get('revenue', 0):,} revenue sums (partition x currency), the "
            f"gate of {cmp['partitions']} partition(s) ({cmp['gate_passed']} passed), "
            f"{n.get('checks', 0):,} check outcomes")


def _pg_size_mib(url: str) -> float:
    import psycopg

    with psycopg.connect(url) as conn:
        return round(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20, 1)


# ------------------------------------------------------------------ report


def table_rows(res: dict, bench) -> list[str]:
    """Rows of the end-to-end table: the aws run beside the DuckDB run of the same days."""
    lines = []
    for entry in (res.get("aws") or {}).values():
        run, base = res["runs"].get(entry["run"]), res["runs"].get(entry["duckdb_run"])
        if not run:
            lines.append(f"| {entry['label']} (**FAILED**: {entry.get('error', '')[:300]}) | | | | | | |")
            continue
        note = "" if run["ok"] else f" ({bench._why(run)})"
        moto = (run.get("moto") or {}).get("peak_rss_mib")
        rss = bench._fmt_mib(run["peak_mib"]) + (f" (moto {moto:,.0f})" if moto else "")
        cmp = entry.get("comparison")
        if base and base.get("ok"):
            what = {"big_day": " (the big day row)"}.get(entry["duckdb_run"], "")
            what = " (the backfill row)" if entry["duckdb_run"].startswith("backfill_") else what
            vs = f"DuckDB, same files{what}: {base['wall_s']:.1f} s, {bench._fmt_mib(base['peak_mib'])} MiB"
            ratio = f"{bench._ratio(run['wall_s'], base['wall_s'])}x"
        else:
            vs, ratio = "DuckDB run failed", ""
        met = "-" if not cmp else ("yes" if cmp["agree"] else f"**no** ({len(cmp['differences'])} differ)")
        lines.append(f"| {entry['label']}{note} | {bench._fmt_s(run['wall_s'])} | {rss} | {vs} | {ratio} | "
                     "same outputs as DuckDB | " + met + " |")
    return lines


def details(res: dict) -> list[str]:
    """The aws section: where the files were, moto, the comparison, the slowest steps."""
    entries = (res.get("aws") or {}).values()
    if not entries:
        return []
    lines = ["", "## aws deployment (`--aws`: moto S3 in its own process + PostgreSQL)", "",
             (f"Landing files on S3 (moto), uploaded with boto3 before each timed run; raw layer as "
              f"parquet on S3; staging, marts and quality in a fresh PostgreSQL database on "
              f"{res['params'].get('aws_pg_server')}; peak RSS is the CLI's process tree, moto's "
              "(a separate process) is beside it."), ""]
    for e in entries:
        run = res["runs"].get(e["run"]) or {}
        parts = [f"**{e['label']}**:"]
        if e.get("upload"):
            u = e["upload"]
            parts.append(f"uploaded {u['files']} files, {u['mib']:,} MiB in {u['s']} s (not timed);")
        m = run.get("moto")
        if m:
            parts.append(f"moto {m['rss_before_mib']:,.0f} MiB before the run, peak {m['peak_rss_mib'] or 0:,.0f} MiB, "
                         f"{m['cpu_s']} s CPU during it;")
        if e.get("s3_raw"):
            parts.append(f"raw layer {e['s3_raw']['objects']} objects, {e['s3_raw']['mib']:,} MiB;")
        if e.get("pg_database_mib"):
            parts.append(f"PostgreSQL database {e['pg_database_mib']:,} MiB;")
        cmp = e.get("comparison")
        if cmp:
            text = describe(cmp)
            parts.append(f"outputs against DuckDB's (`{e['duckdb_run']}`): "
                         + (text if cmp["agree"] else f"**{text}**") + ".")
        elif e.get("error"):
            parts.append(f"**FAILED**: {e['error'][:300]}")
        else:
            parts.append("**not compared** (a run failed).")
        lines.append("- " + " ".join(parts))
        steps, base = run.get("steps") or {}, (res["runs"].get(e["duckdb_run"]) or {}).get("steps") or {}
        if steps:
            lines.append("  Slowest steps (aws / DuckDB s): " + ", ".join(
                f"`{s}` {t:.1f} / {base[s]:.1f}" if s in base else f"`{s}` {t:.1f}"
                for s, t in list(steps.items())[:8])
                + f"; all {len(steps)} steps {sum(steps.values()):.1f} / {sum(base.values()):.1f}.")
    return lines


def evaluate(res: dict, failures: list[str]) -> None:
    """A run that could not be made or compared, or outputs that differ, fail the benchmark."""
    for e in (res.get("aws") or {}).values():
        if e.get("error"):
            failures.append(f"{e['run']}: {e['error']}")
            continue
        cmp = e.get("comparison")
        if cmp and not cmp["agree"]:
            failures.append(f"{e['run']}: outputs differ from DuckDB's ({e['duckdb_run']}): "
                            + "; ".join(cmp["differences"][:10]))
        elif not cmp:  # a failed run is reported as such; say that it was not verified either
            failures.append(f"{e['run']}: outputs not compared with DuckDB's (a run failed)")
