"""dq_assets benchmarks, in one command: `python -m benchmarks.run [--quick]`.

Generates landing data with the project's generator in a temporary directory (deleted after),
then measures, each run in a fresh warehouse and DAGSTER_HOME, through the same CLI CI uses:

  1. one day of --orders orders end to end (`dagster asset materialize -m dq_assets --select '*'
     --partition D`), against the same CLI on a no-op graph of the same shape (noop_defs.py):
     Dagster's own floor; and a tiny day (50 orders) against that floor;
  2. single-run backfills (`--partition-range`) of 30 and 365 days at 10,000 orders a day, and
     the no-op graph over the same ranges;
  3. the check suite alone on the big day's raw tables: dq_assets' own `validate` vs
     hand-written DuckDB SQL vs pandera vs Great Expectations 1.x vs Soda Core, asserting that
     every tool finds the same failing-row count for every rule (check_suite.py; Soda in its
     own virtualenv, peers.py);
  3b. (the `peers` part) `dbt build` of benchmarks/dbt_project on the big day's landing files:
     the same staging rules, quarantine and revenue mart, with dbt's tests (dbt in its own
     virtualenv), against the big day end to end;
  4. optionally (--profile) the big day once more under py-spy, summarised by function;
  5. optionally (--aws PG_URL) the aws deployment (moto S3 in its own process + PostgreSQL): a
     day and a range through the same CLI, their outputs compared with DuckDB's (aws.py);
  6. optionally (--distributed PG_URL) a range on the aws deployment with Dagster's instance in
     PostgreSQL, in process, with the celery executor on 1 and 2 workers, and as an asset
     backfill of multi-day runs executed by the daemon; where the time goes, outputs compared
     with the in-process run's (distributed.py).

Wall time and peak RSS (the process tree polled with psutil, and GNU time's maximum RSS) of
every run go to benchmarks/results/latest.json and latest.md (also printed). The targets are
reported, not asserted; the run exits 1 only when something failed or the tools disagree.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from benchmarks import aws, distributed
from benchmarks.checksums import differences, table_checksums
from benchmarks.measure import GNU_TIME, peak_mib, run_measured
from benchmarks.peers import DEFAULT_DIR as PEERS_VENV_DIR
from benchmarks.peers import ensure_venv

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
GiB = 1024

# Defects injected into the big day (each at --defect-rate of its table's rows): one per rule
# the check suite compares, all of them WARN in the default gate, so the day still passes it
# and the end-to-end run goes all the way to the marts. (Unknown references in the fact tables
# are ERROR and would stop the day at the gate, so they are not injected; every tool still
# evaluates them.)
DEFECTS = (
    "orders.missing_required@status", "orders.missing_required@customer_id",
    "orders.unparseable@order_ts", "orders.unparseable@amount",
    "orders.invalid_value@status", "orders.invalid_value@currency",
    "orders.out_of_range@amount", "orders.future_timestamp@order_ts", "orders.duplicate",
    "order_items.missing_required@quantity", "order_items.unparseable@quantity",
    "order_items.unparseable@unit_price", "order_items.out_of_range@quantity",
    "order_items.calculation_mismatch",
    "order_items.duplicate",
    "customers.missing_required@email", "customers.unparseable@signup_ts",
    "customers.unparseable@updated_at", "customers.invalid_value@email",
    "customers.invalid_value@country_code", "customers.duplicate",
)

# The targets (2 cores): the big day; a year's backfill on the default instance as the
# data work beyond Dagster's own no-op run of the same range, on the production instance whole.
TARGETS = {
    "big_day_s": 45.0,
    "big_day_rss_mib": 3 * GiB,
    "tiny_vs_floor": 1.5,
    "checks_vs_sql": 1.2,
    "backfill_365_beyond_floor_s": 150.0,
    "backfill_365_pg_s": 200.0,
}


def log(msg: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ environment


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("dagster", "duckdb", "pandas", "pyarrow", "numpy", "great_expectations",
                "pandera", "psutil", "py-spy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def machine() -> dict:
    info = {"cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        import psutil
        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def peers_status(v: dict) -> dict:
    """Why a peer tool is not benchmarked (None when it is)."""
    out = {}
    ge = v.get("great_expectations")
    out["great_expectations"] = (
        "not installed (pip install -e '.[bench]')" if ge is None
        else None if ge.split(".")[0] == "1" else f"installed {ge}, not 1.x")
    out["pandera"] = None if v.get("pandera") else "not installed (pip install -e '.[bench]')"
    return out


# ------------------------------------------------------------------ runs


def base_env() -> dict:
    env = dict(os.environ)
    for var in ("DQ_GATE_CONFIG", "DQ_SUPPRESSIONS", "DQ_ALERT_SINKS"):
        env.pop(var, None)  # the defaults: strict gate, the project's suppressions
    env["DQ_DEPLOYMENT"] = "local"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["GX_ANALYTICS_ENABLED"] = "False"
    return env


def bin_path(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def generate(tmp: Path, name: str, start: date, days: int, orders: int, defects=(),
             rate: float = 0.001, timeout: float = 1500) -> dict:
    out = tmp / name
    cmd = [bin_path("dq-generate"), "--out", str(out), "--start", start.isoformat(),
           "--days", str(days), "--orders-per-day", str(orders)]
    for d in defects:
        cmd += ["--defect", f"{d}={rate}"]
    log(f"generate {name}: {days} day(s) x {orders:,} orders" + (f", {len(defects)} defect kinds at {rate}" if defects else ""))
    r = run_measured(cmd, env=base_env(), cwd=str(REPO), log=tmp / "logs" / f"generate_{name}.log",
                     timeout=timeout)
    if r["exit_code"] != 0:
        raise SystemExit(f"dq-generate failed for {name}; see {tmp / 'logs'}: "
                         + (tmp / "logs" / f"generate_{name}.log").read_text()[-2000:])
    size = sum(f.stat().st_size for f in out.rglob("*.csv"))
    rows = Counter()
    for f in out.glob("ingest_date=*/_manifest.json"):
        for fname, entry in json.loads(f.read_text())["files"].items():
            rows[fname.removesuffix(".csv")] += int(entry.get("rows", 0))
    return {"path": str(out), "days": days, "orders_per_day": orders, "wall_s": r["wall_s"],
            "peak_rss_mib": peak_mib(r), "csv_mib": round(size / 2**20, 1), "rows": dict(rows),
            "defects": [f"{d}={rate}" for d in defects]}


# A Dagster instance in PostgreSQL with Dagster's two settings for long single-run backfills
# (deploy/README.md): events stored in batches, and one planned event per asset for the range.
PG_INSTANCE_YAML = """storage:
  postgres:
    postgres_url:
      env: DQ_BENCH_DAGSTER_PG_URL
telemetry:
  enabled: false
"""
PG_BACKFILL_SETTINGS = {"DAGSTER_EVENT_BATCH_SIZE": "1000",
                        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"}


class PgInstance:
    """A fresh database on the server of `url` for one run's Dagster records, dropped after."""

    def __init__(self, url: str, name: str):
        self.admin_url, self.database = url, f"dq_bench_{re.sub(r'[^a-z0-9_]', '_', name.lower())}"
        parts = urlsplit(url)
        # psycopg2, as in deploy/dagster.yaml: SQLAlchemy 2.1 would pick psycopg 3 for postgresql://
        self.env = {**PG_BACKFILL_SETTINGS, "DQ_BENCH_DAGSTER_PG_URL": urlunsplit(
            parts._replace(scheme="postgresql+psycopg2", path=f"/{self.database}"))}

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def __enter__(self) -> Self:
        self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.database}"')
        return self

    def __exit__(self, *exc) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


_STEP = re.compile(r'Finished execution of step "([^"]+)" in ([0-9hms.]+)')


def _duration_s(text: str) -> float:
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)(ms|h|m|s)", text):
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


_START = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) \+0000 - dagster - \w+ - [^-]+ - [0-9a-f-]+ - \d+ - "
                    r"(\S+) - STEP_START", re.MULTILINE)


def step_at(text: str, when: float | None) -> str | None:
    """The step that had started last at `when` (the in-process executor runs one at a time;
    the log has whole seconds)."""
    if when is None:
        return None
    current = None
    for m in _START.finditer(text):
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
        if t > when:
            break
        current = m.group(2)
    return current


def parse_run_log(path: Path, peak_at: float | None = None) -> dict:
    text = path.read_text(encoding="utf-8", errors="replace")
    steps = {m.group(1): round(_duration_s(m.group(2)), 3) for m in _STEP.finditer(text)}
    return {
        "run_success": "RUN_SUCCESS" in text,
        "run_failure": "RUN_FAILURE" in text,
        "gate_failed": "gate FAILED" in text,
        "steps": dict(sorted(steps.items(), key=lambda kv: -kv[1])),
        "checks_evaluated": text.count("ASSET_CHECK_EVALUATION"),
        "materializations": text.count("ASSET_MATERIALIZATION"),
        "peak_rss_during_step": step_at(text, peak_at),
    }


def materialize(tmp: Path, name: str, module: str, landing: Path | str, partition: str | None = None,
                partition_range: str | None = None, timeout: float = 1500,
                wrap: list[str] | None = None, instance: PgInstance | None = None,
                extra_env: dict[str, str | None] | None = None) -> dict:
    """One `dagster asset materialize` run in a fresh warehouse and Dagster home (with
    `instance`, a dagster.yaml keeping the Dagster records in PostgreSQL; `extra_env` set last,
    a None value removing the variable: the aws deployment's settings, benchmarks/aws.py)."""
    run_dir = tmp / "runs" / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / "dagster_home").mkdir(parents=True)
    env = base_env()
    if instance:
        (run_dir / "dagster_home" / "dagster.yaml").write_text(PG_INSTANCE_YAML, encoding="utf-8")
        env.update(instance.env)
    env.update({
        "DQ_LANDING": str(landing),
        "DQ_WAREHOUSE": str(run_dir / "warehouse.duckdb"),
        "DAGSTER_HOME": str(run_dir / "dagster_home"),
        "DQ_ALERT_FILE": str(run_dir / "alerts.jsonl"),
        "DQ_BENCH_NOOP_SPEC": str(tmp / "noop_graph.json"),
    })
    for var, value in (extra_env or {}).items():
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
    cmd = [bin_path("dagster"), "asset", "materialize", "-m", module, "--select", "*"]
    cmd += ["--partition", partition] if partition else ["--partition-range", partition_range]
    r = run_measured([*(wrap or []), *cmd], env=env, cwd=str(REPO), log=run_dir / "run.log",
                     timeout=timeout)
    r.update(parse_run_log(run_dir / "run.log", r.get("peak_rss_at")))
    r["peak_mib"] = peak_mib(r)
    r["ok"] = r["exit_code"] == 0 and not r["timed_out"] and not r.get("memory_killed")
    r["run_dir"] = str(run_dir)
    if not r["ok"]:
        tail = (run_dir / "run.log").read_text(errors="replace").splitlines()[-15:]
        r["log_tail"] = tail
    status = "ok" if r["ok"] else _why(r)
    log(f"  {name}: {r['wall_s']:.1f} s, peak RSS {r['peak_mib'] or 0:.0f} MiB, {status}")
    return r


def _why(r: dict) -> str:
    if r.get("memory_killed"):
        step = f" in step {r['peak_rss_during_step']}" if r.get("peak_rss_during_step") else ""
        return f"KILLED at the memory cap, {r.get('memory_cap_mib'):,} MiB RSS, after {r['wall_s']:.0f} s{step}"
    if r.get("timed_out"):
        return "TIMED OUT"
    return f"exit {r.get('exit_code')}" + (" (gate failed)" if r.get("gate_failed") else "")


def warehouse_rows(run: dict) -> dict:
    """Rows left behind by a run (read-only, after the process exited)."""
    try:
        import duckdb
        path = Path(run["run_dir"]) / "warehouse.duckdb"
        with duckdb.connect(str(path), read_only=True) as conn:
            out = {}
            for schema, table in (("raw", "orders"), ("staging", "orders"), ("quality", "orders_quarantine"),
                                  ("staging", "order_items"), ("staging", "events"),
                                  ("marts", "fact_revenue_daily")):
                try:
                    out[f"{schema}.{table}"] = conn.execute(f"SELECT count(*) FROM {schema}.{table}").fetchall()[0][0]
                except duckdb.Error:
                    out[f"{schema}.{table}"] = None
            return out
    except Exception as e:  # noqa: BLE001 - informative only
        return {"error": str(e)}


def big_day_tables(run: dict, last_run: str, orders: int) -> dict:
    """The checksum of every table the big day left behind (benchmarks.checksums), compared with
    those of the last run of the same mode and size: a speed-up must leave them identical."""
    try:
        now = table_checksums(Path(run["run_dir"]) / "warehouse.duckdb")
    except Exception as e:  # noqa: BLE001 - reported, the benchmark goes on
        return {"error": str(e)}
    out: dict = {"checksums": now}
    try:
        last = json.loads(last_run)
        before = last["runs"]["big_day"]["tables"]["checksums"]
        if last["params"]["orders"] == orders:
            out["differ_from_last_run"] = differences(before, now)
    except (KeyError, TypeError, ValueError):
        pass  # no earlier run of this size to compare with
    return out


def repeated(tmp: Path, name: str, n: int, **kw) -> dict:
    runs = [materialize(tmp, f"{name}_{i + 1}", **kw) for i in range(n)]
    walls = [r["wall_s"] for r in runs]
    best = dict(runs[walls.index(sorted(walls)[len(walls) // 2])])  # the median run
    best.update({"wall_s": round(statistics.median(walls), 3), "runs_s": walls,
                 "ok": all(r["ok"] for r in runs),
                 "peak_mib": max((r["peak_mib"] or 0) for r in runs) or None})
    return best


# ------------------------------------------------------------------ dbt (a peer)

DBT_PROJECT = Path(__file__).resolve().parent / "dbt_project"
DBT_TABLES = ("customers", "products", "orders", "order_items", "payments", "events")


def run_dbt(tmp: Path, venv: dict, landing: Path, day: str, timeout: float, name: str = "dbt_build") -> dict:
    """`dbt build` of benchmarks/dbt_project on one day's landing files, in a fresh DuckDB file,
    measured like our runs (wall time of the CLI, peak RSS of its process tree)."""
    run_dir = tmp / "runs" / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update({"DQ_DBT_WAREHOUSE": str(run_dir / "dbt.duckdb"), "DQ_DBT_THREADS": "2",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_PARTIAL_PARSE": "false",
                "PATH": str(Path(venv["bin"]).parent) + os.pathsep + env.get("PATH", "")})
    variables = json.dumps({"landing": str(landing), "ingest_date": day})
    cmd = [venv["bin"], "build", "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
           "--target-path", str(run_dir / "target"), "--log-path", str(run_dir / "logs"),
           "--vars", variables]
    log(f"dbt build ({DBT_PROJECT.name}) on {landing.name} {day}")
    r = run_measured(cmd, env=env, cwd=str(DBT_PROJECT), log=run_dir / "run.log", timeout=timeout)
    r["peak_mib"] = peak_mib(r)
    r["ok"] = r["exit_code"] == 0 and not r["timed_out"] and not r.get("memory_killed")
    r["run_dir"] = str(run_dir)
    results = run_dir / "target" / "run_results.json"
    if results.exists():
        rr = json.loads(results.read_text())
        status = Counter()
        slowest = []
        for node in rr.get("results", []):
            kind = node["unique_id"].split(".")[0]
            status[f"{kind} {node['status']}"] += 1
            slowest.append((node.get("execution_time") or 0, node["unique_id"].split(".", 2)[-1]))
        r["nodes"] = dict(sorted(status.items()))
        r["slowest_nodes"] = [{"node": n, "s": round(t, 2)} for t, n in sorted(slowest, reverse=True)[:8]]
        r["dbt_elapsed_s"] = rr.get("elapsed_time")
    if r["ok"]:
        try:
            import duckdb
            with duckdb.connect(str(run_dir / "dbt.duckdb"), read_only=True) as conn:
                rows = {}
                for t in DBT_TABLES:
                    for schema, table in (("raw", t), ("staging", t), ("quality", f"{t}_quarantine")):
                        rows[f"{schema}.{table}"] = conn.execute(f"SELECT count(*) FROM {schema}.{table}").fetchall()[0][0]
                rows["marts.fact_revenue_daily"] = conn.execute(
                    "SELECT count(*) FROM marts.fact_revenue_daily").fetchall()[0][0]
                r["revenue"] = {cur: str(v) for cur, v in conn.execute(
                    "SELECT currency, sum(revenue) FROM marts.fact_revenue_daily GROUP BY 1 ORDER BY 1").fetchall()}
            r["warehouse_rows"] = rows
        except Exception as e:  # noqa: BLE001 - informative only
            r["warehouse_rows"] = {"error": str(e)}
    else:
        r["log_tail"] = (run_dir / "run.log").read_text(errors="replace").splitlines()[-15:]
    log(f"  dbt build: {r['wall_s']:.1f} s, peak RSS {r['peak_mib'] or 0:.0f} MiB, "
        + ("ok" if r["ok"] else _why(r)) + (f", {r.get('nodes')}" if r.get("nodes") else ""))
    return r


def scaling(tmp: Path, args, res: dict, skip: set, start: date, day: str) -> dict:
    """One day of each `--scaling` size end to end, and dbt on it, beside the big day's run and
    the no-op floor; plotted to scaling.png (wall time against orders per day)."""
    from benchmarks.plot import plot_scaling

    sizes = sorted({int(x) for x in args.scaling.split(",") if x.strip()})
    venv = res["peer_venvs"].get("dbt") if "peers" not in skip else None
    points = []
    for n in sizes:
        generate(tmp, f"land_{n}", start, 1, n, DEFECTS, args.defect_rate, args.timeout)
        log(f"day of {n:,} orders end to end")
        ours = materialize(tmp, f"day_{n}", "dq_assets", tmp / f"land_{n}", partition=day,
                           timeout=args.timeout)
        dbt = run_dbt(tmp, venv, tmp / f"land_{n}", day, args.timeout, name=f"dbt_{n}") if venv and venv.get("ok") else None
        points.append({"orders": n, "dq_assets_s": ours["wall_s"] if ours["ok"] else None,
                       "dbt_s": dbt["wall_s"] if dbt and dbt["ok"] else None})
    big, dbt_big = res["runs"].get("big_day"), res.get("peer_runs", {}).get("dbt_build")
    if big and res["params"]["orders"] not in sizes:
        points.append({"orders": res["params"]["orders"], "dq_assets_s": big["wall_s"] if big["ok"] else None,
                       "dbt_s": dbt_big["wall_s"] if dbt_big and dbt_big["ok"] else None})
    points.sort(key=lambda p: p["orders"])
    floor = (res["runs"].get("noop_day") or {}).get("wall_s")
    out = {"points": points, "floor_s": floor}
    try:
        path = plot_scaling(points, floor, args.out / "scaling.png")
        out["plot"] = str(path)
        if not args.quick:  # the README shows the last full run's
            shutil.copy(path, Path(__file__).resolve().parent / "scaling.png")
    except ImportError as e:  # matplotlib is in the bench extras
        out["plot_error"] = str(e)
    log("scaling: " + ", ".join(f"{p['orders']:,}: {p['dq_assets_s']} s (dbt {p['dbt_s']} s)" for p in points))
    return out


def dbt_vs_dq_assets(res: dict) -> dict:
    """dbt's staged / quarantined rows against dq_assets' for the same day: the check suite's
    `validate` (orders, order_items, customers) and the big day's warehouse when it ran."""
    dbt = (res.get("peer_runs", {}).get("dbt_build") or {}).get("warehouse_rows") or {}
    ours: dict = {}
    for t, e in ((res.get("check_suite") or {}).get("tools", {}).get("dq_assets", {}).get("tables", {})).items():
        ours[f"staging.{t}"] = e.get("staging_rows")
        ours[f"quality.{t}_quarantine"] = e.get("quarantine_rows")
    big = (res.get("runs", {}).get("big_day") or {}).get("warehouse_rows") or {}
    for k, v in big.items():
        if k != "error" and v is not None:
            ours.setdefault(k, v)
    out = {}
    for k, v in ours.items():
        if k in dbt and v is not None:
            out[k] = {"dq_assets": v, "dbt": dbt[k], "agree": v == dbt[k]}
    return out


def day_range(start: date, days: int) -> str:
    return f"{start.isoformat()}...{(start + timedelta(days=days - 1)).isoformat()}"


# ------------------------------------------------------------------ profile


def profile(tmp: Path, landing: Path, partition: str, timeout: float) -> dict:
    """The big day once more under py-spy (sampling; cProfile when py-spy is missing)."""
    pyspy = shutil.which("py-spy") or (str(Path(sys.executable).parent / "py-spy")
                                       if (Path(sys.executable).parent / "py-spy").exists() else None)
    out = tmp / "profile.txt"
    if pyspy:
        wrap = [pyspy, "record", "--format", "raw", "--rate", "100", "-o", str(out), "--"]
        tool = "py-spy"
    else:
        out = tmp / "profile.prof"
        wrap = [sys.executable, "-m", "cProfile", "-o", str(out)]
        tool = "cProfile"
    log(f"profile: the big day under {tool}")
    r = materialize(tmp, "profile_big_day", "dq_assets", landing, partition=partition,
                    timeout=timeout, wrap=wrap)
    result = {"tool": tool, "wall_s": r["wall_s"], "ok": r["ok"]}
    if not out.exists():
        result["error"] = "no profile written (py-spy may lack ptrace permission)"
        return result
    if tool == "py-spy":
        result.update(summarise_collapsed(out))
    else:
        import pstats
        stats = pstats.Stats(str(out))
        rows = sorted(((v[3], f"{k[2]} ({Path(k[0]).name}:{k[1]})") for k, v in stats.stats.items()),
                      reverse=True)
        result["cumulative_s"] = [{"function": f, "s": round(s, 2)} for s, f in rows[:25]]
    shutil.copy(out, RESULTS / ("profile_big_day" + out.suffix))
    return result


def summarise_collapsed(path: Path) -> dict:
    """Inclusive share of samples per dq_assets function, and the hottest leaf frames."""
    total, inclusive, leaf, modules = 0, Counter(), Counter(), Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        seen = set()
        for f in frames:
            if "dq_assets/" in f or "dq_assets\\" in f:
                name = re.sub(r":\d+\)$", ")", f)
                if name not in seen:
                    inclusive[name] += n
                    seen.add(name)
        leaf[frames[-1]] += n  # with its line: native work shows as the line that called it
        # py-spy names files relative to sys.path: the first part is the package
        m = re.search(r"\(([^():]+):\d+\)$", frames[-1])
        path = m.group(1) if m else ""
        modules[path.split("/")[0] if "/" in path else "(stdlib / script)"] += n
    pct = lambda n: round(100 * n / total, 1) if total else 0.0
    return {
        "samples": total,
        "dq_assets_inclusive_pct": [{"function": f, "pct": pct(n)} for f, n in inclusive.most_common(20)],
        "leaf_pct": [{"frame": f, "pct": pct(n)} for f, n in leaf.most_common(15)],
        "innermost_package_pct": [{"package": k, "pct": pct(n)} for k, n in modules.most_common(10)],
    }


# ------------------------------------------------------------------ report


def _fmt_s(v) -> str:
    return "-" if v is None else f"{v:,.1f}"


def _fmt_mib(v) -> str:
    return "-" if not v else f"{v:,.0f}"


def _ratio(a, b) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _met(ok) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def markdown(res: dict) -> str:
    p = res["params"]
    lines = [f"# dq_assets benchmarks ({'quick' if p['quick'] else 'full'})", "",
             (f"{res['finished_at']} · {res['machine'].get('cpus')} CPUs, "
              f"{res['machine'].get('memory_gib', '?')} GiB · dagster {res['versions']['dagster']}, "
              f"duckdb {res['versions']['duckdb']}, pandas {res['versions']['pandas']}"), "",
             "## End to end (`dagster asset materialize`, CLI wall time incl. start-up)", "",
             "| run | wall s | peak RSS MiB | compared with | ratio | target | met |",
             "|---|---:|---:|---|---:|---|---|"]
    r = res["runs"]
    floor = r.get("noop_day")
    for key, label, target, met in (
        ("big_day", f"1 day, {p['orders']:,} orders", f"≤ {TARGETS['big_day_s']:.0f} s and ≤ {TARGETS['big_day_rss_mib'] / GiB:.0f} GiB", "big_day"),
        ("tiny_day", f"tiny day, {p['tiny_orders']} orders (median of {p['repeat']})",
         f"≤ {TARGETS['tiny_vs_floor']}x floor", "tiny_vs_floor"),
        ("noop_day", f"no-op graph, 1 day (median of {p['repeat']}): Dagster's floor", "", None),
    ):
        run = r.get(key)
        if not run:
            continue
        note = "" if run["ok"] else f" ({_why(run)})"
        cmp = f"no-op floor {floor['wall_s']:.1f} s" if floor and key != "noop_day" else ""
        lines.append(f"| {label}{note} | {_fmt_s(run['wall_s'])} | {_fmt_mib(run['peak_mib'])} | {cmp} | "
                     f"{(str(_ratio(run['wall_s'], floor['wall_s'])) + 'x') if cmp else ''} | {target} | "
                     f"{_met(res['targets_met'].get(met)) if met else ''} |")
    for days in p["backfill_days"]:
        for suffix, instance in (("", ""), ("_pg", ", Dagster's records in PostgreSQL, batched")):
            run, noop = r.get(f"backfill_{days}{suffix}"), r.get(f"noop_backfill_{days}{suffix}")
            if not run:
                continue
            note = "" if run["ok"] else f" ({_why(run)})"
            target = ("" if days != 365 else f"≤ {TARGETS['backfill_365_pg_s']:.0f} s" if suffix
                      else f"≤ {TARGETS['backfill_365_beyond_floor_s']:.0f} s beyond the no-op")
            met = _met(res["targets_met"].get(f"backfill_365{suffix}")) if days == 365 else ""
            cmp = f"no-op {days} days {noop['wall_s']:.1f} s" if noop else ""
            lines.append(f"| backfill {days} days x {p['backfill_orders']:,} orders, one run{instance}{note} | "
                         f"{_fmt_s(run['wall_s'])} | {_fmt_mib(run['peak_mib'])} | {cmp} | "
                         f"{(str(_ratio(run['wall_s'], noop['wall_s'])) + 'x') if noop else ''} | {target} | {met} |")
    lines += aws.table_rows(res, sys.modules[__name__])
    cs = res.get("check_suite")
    if cs:
        lines += ["", f"## Check suite alone ({', '.join(f'{t} {n:,} rows' for t, n in cs.get('rows', {}).items())})", ""]
        if cs.get("error"):
            lines.append(f"FAILED: {cs['error']}")
        tools = cs.get("tools", {})
        sql = tools.get("duckdb_sql", {}).get("total_s")
        dq = tools.get("dq_assets", {}).get("total_s")
        lines += ["| tool | " + " | ".join(f"{t} s" for t in cs.get("rows", {})) +
                  " | total s | peak RSS MiB | vs hand-written SQL | vs dq_assets |",
                  "|---|" + "---:|" * (len(cs.get("rows", {})) + 4)]
        for tool, e in tools.items():
            per = " | ".join(f"{e['tables'][t]['s']:.2f}" for t in cs.get("rows", {}))
            lines.append(f"| {tool} | {per} | {e['total_s']:.2f} | {_fmt_mib(e.get('peak_rss_mib'))} | "
                         f"{_ratio(e['total_s'], sql)}x | {_ratio(e['total_s'], dq)}x |")
        for tool, why in cs.get("skipped", {}).items():
            lines.append(f"| {tool} | skipped: {why} |")
        for tool, err in cs.get("errors", {}).items():
            lines.append(f"| {tool} | **FAILED**: {err[:300]} |")
        venv = res.get("peer_venvs", {}).get("soda")
        if venv and not venv.get("ok"):
            lines.append(f"| soda | **FAILED** to create its virtualenv: {venv.get('error', '')[:300]} |")
        agree = "all tools agree on every rule" if not cs.get("mismatches") else \
            f"**{len(cs['mismatches'])} MISMATCHES** (see latest.json)"
        nz = cs.get("nonzero_rules", {})
        lines += ["", f"Failing-row counts: {agree}; rules per table "
                  + ", ".join(f"{t} {len(cs['rules'][t])} ({nz.get(t, 0)} with failures)" for t in cs.get('rules', {}))
                  + f". Target: dq_assets ≤ {TARGETS['checks_vs_sql']}x the hand-written SQL: "
                  + _met(res["targets_met"].get("checks_vs_sql")) + "."]
        dq_t = tools.get("dq_assets", {}).get("tables", {})
        if dq_t:
            counts = {t: {k: v for k, v in sorted(dq_t[t]["counts"].items()) if v} for t in dq_t}
            lines += ["", "Failing rows per rule (every tool): " + "; ".join(
                f"{t}: " + ", ".join(f"{k} {v:,}" for k, v in c.items()) for t, c in counts.items())]
    lines += peers_markdown(res)
    big = r.get("big_day")
    if big and big.get("steps"):
        lines += ["", f"## Where the {p['orders']:,}-order day goes (Dagster step times)", "",
                  "| step | s |", "|---|---:|"]
        for step, s in list(big["steps"].items())[:10]:
            lines.append(f"| {step} | {s:.1f} |")
        floor_steps = sum((floor or {}).get("steps", {}).values()) if floor else None
        lines.append(f"| (sum of all {len(big['steps'])} steps) | {sum(big['steps'].values()):.1f} |")
        if floor_steps is not None:
            lines.append(f"| (no-op graph: sum of its steps) | {floor_steps:.1f} |")
        if big.get("peak_rss_during_step"):
            lines += ["", (f"Peak RSS {_fmt_mib(big['peak_mib'])} MiB, reached during step "
                           f"`{big['peak_rss_during_step']}`.")]
    prof = res.get("profile")
    if prof and prof.get("dq_assets_inclusive_pct"):
        lines += ["", f"## Profile of the big day ({prof['tool']}, {prof['samples']:,} samples)", "",
                  "| dq_assets function (inclusive) | % of samples |", "|---|---:|"]
        for row in prof["dq_assets_inclusive_pct"][:12]:
            lines.append(f"| {row['function']} | {row['pct']} |")
        lines += ["", "| innermost Python frame (native DuckDB / Arrow work shows as its caller) | % |",
                  "|---|---:|"]
        for row in prof["leaf_pct"][:8]:
            lines.append(f"| {row['frame']} | {row['pct']} |")
        lines += ["", "| package of the innermost frame | % |", "|---|---:|"]
        for row in prof["innermost_package_pct"][:6]:
            lines.append(f"| {row['package']} | {row['pct']} |")
    lines += aws.details(res)
    lines += distributed.table(res) + distributed.details(res)
    ds = res.get("datasets", {})
    if ds:
        lines += ["", "## Data generated (dq-generate)", "", "| dataset | days x orders | rows | CSV MiB | generate s |",
                  "|---|---|---|---:|---:|"]
        for name, d in ds.items():
            rows = ", ".join(f"{k} {v:,}" for k, v in d["rows"].items())
            lines.append(f"| {name} | {d['days']} x {d['orders_per_day']:,} | {rows} | {d['csv_mib']:,.0f} | {d['wall_s']:.1f} |")
    if res.get("failures"):
        lines += ["", "## Failures", ""] + [f"- {f[:600]}" for f in res["failures"]]
    notes = res.get("notes", [])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def peers_markdown(res: dict) -> list[str]:
    """The dbt row (beside our big day) and the peers' virtualenvs."""
    venvs, dbt = res.get("peer_venvs", {}), res.get("peer_runs", {}).get("dbt_build")
    if not venvs and not dbt:
        return []
    p = res["params"]
    lines = ["", "## Peers in their own virtualenvs (`--skip peers` leaves them out)", "",
             "| run | wall s | peak RSS MiB | compared with | ratio | result |", "|---|---:|---:|---|---:|---|"]
    big = res["runs"].get("big_day")
    for name, venv in venvs.items():
        if not venv.get("ok"):
            lines.append(f"| {name} virtualenv (`{' '.join(venv.get('pins', []))}`) | | | | | "
                         f"**FAILED**: {venv.get('error', '')[:400]} |")
    if dbt:
        ours = f"dq_assets end to end {big['wall_s']:.1f} s, {_fmt_mib(big['peak_mib'])} MiB" \
            if big and big.get("ok") else "(the big day end to end did not run: `--skip big`)"
        ratio = f"{_ratio(dbt['wall_s'], big['wall_s'])}x" if big and big.get("ok") else ""
        nodes = ", ".join(f"{k} {v}" for k, v in (dbt.get("nodes") or {}).items())
        result = nodes if dbt.get("ok") else f"**{_why(dbt)}**"
        lines.append(f"| `dbt build`, 1 day, {p['orders']:,} orders ({dbt.get('pins', '')}) | "
                     f"{_fmt_s(dbt['wall_s'])} | {_fmt_mib(dbt['peak_mib'])} | {ours} | {ratio} | {result} |")
    cmp = res.get("dbt_vs_dq_assets") or {}
    if cmp:
        agree = all(v["agree"] for v in cmp.values())
        lines += ["", "dbt's rows against dq_assets' on the same day: "
                  + ("all agree" if agree else "**some differ**") + " ("
                  + ", ".join(f"{k} {v['dbt']:,}" + ("" if v["agree"] else f" vs {v['dq_assets']:,}")
                              for k, v in cmp.items()) + ")."]
    if dbt and dbt.get("slowest_nodes"):
        lines += ["", "Slowest dbt nodes: " + ", ".join(f"{n['node']} {n['s']:.1f} s" for n in dbt["slowest_nodes"][:6]) + "."]
    return lines


# ------------------------------------------------------------------ main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description="dq_assets benchmarks")
    p.add_argument("--quick", action="store_true",
                   help="small numbers: 20,000-order day, 7-day x 1,000-order backfill, no 365 days")
    p.add_argument("--orders", type=int, help="orders of the big day (default 1,000,000; quick 20,000)")
    p.add_argument("--tiny-orders", type=int, default=50)
    p.add_argument("--backfill-orders", type=int, help="orders per backfill day (default 10,000; quick 1,000)")
    p.add_argument("--backfill-days", help="comma list (default 30,365; quick 7)")
    p.add_argument("--defect-rate", type=float, default=0.001, help="rate of each defect kind in the big day")
    p.add_argument("--repeat", type=int, default=3, help="runs of the tiny day and the no-op floor (median)")
    p.add_argument("--skip", default="", help="comma list of: big,tiny,backfill,checks,peers,aws,"
                   "floor,distributed (peers: pandera, Great Expectations and Soda in the check suite, "
                   "and dbt; floor: the no-op graph's day)")
    p.add_argument("--peers-venv", type=Path, default=PEERS_VENV_DIR,
                   help="where the Soda and dbt virtualenvs are created on first use "
                        "(default benchmarks/.venvs)")
    p.add_argument("--profile", action="store_true", help="also run the big day under py-spy")
    p.add_argument("--scaling", metavar="N,N", help="also run days of these many orders (dq_assets and "
                   "dbt) and plot wall time against orders per day with the big day and the floor "
                   "(scaling.png), e.g. 10000,100000")
    p.add_argument("--timeout", type=float, default=1500, help="seconds per run (default 25 min)")
    p.add_argument("--tmp", help="parent of the temporary directory (default: the system's)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--pg-instance", metavar="URL",
                   help="also run the backfills with Dagster's records in PostgreSQL on this server "
                        "(a fresh database per run) and its settings for long backfills")
    p.add_argument("--aws", metavar="PG_URL",
                   help="also run the aws deployment (moto S3 in its own process, staging, marts and "
                        "quality in a fresh database per run on this PostgreSQL server): a day and a "
                        "range, compared with DuckDB's outputs")
    p.add_argument("--aws-orders", type=int, help="orders of the aws day (default 100,000; quick 2,000)")
    p.add_argument("--aws-days", type=int, help="days of the aws range, at --backfill-orders a day "
                   "(default 30; quick 3)")
    p.add_argument("--distributed", metavar="PG_URL",
                   help="also run a range on the aws deployment with Dagster's instance in PostgreSQL "
                        "(fresh databases on this server): in process, celery on 1 and 2 workers, and an "
                        "asset backfill of multi-day runs by the daemon (distributed.py)")
    p.add_argument("--distributed-days", type=int, help="days of that range, at --backfill-orders a day "
                   "(default 30; quick 3)")
    p.add_argument("--distributed-variants", help="comma list of: " + ",".join(distributed.VARIANTS)
                   + " (default all)")
    p.add_argument("--celery-concurrency", type=int, default=1,
                   help="-c of each celery worker: steps at once per worker (default 1)")
    p.add_argument("--backfill-run-days", type=int, default=10,
                   help="days per run of the asset backfill (DQ_BACKFILL_RUN_DAYS, default 10)")
    p.add_argument("--max-concurrent-runs", type=int, default=2,
                   help="the run queue's limit for the asset backfill (default 2)")
    p.add_argument("--broker", default=distributed.DEFAULT_BROKER,
                   help="the celery broker (default RabbitMQ on 127.0.0.1:5672, guest)")
    args = p.parse_args(argv)

    quick = args.quick
    orders = args.orders or (20_000 if quick else 1_000_000)
    bf_orders = args.backfill_orders or (1_000 if quick else 10_000)
    bf_days = [int(x) for x in (args.backfill_days or ("7" if quick else "30,365")).split(",") if x]
    skip = {s for s in args.skip.split(",") if s}
    start = date(2025, 1, 1)
    day = start.isoformat()

    v = versions()
    res: dict = {
        "params": {"quick": quick, "orders": orders, "tiny_orders": args.tiny_orders,
                   "pg_instance": bool(args.pg_instance),
                   "backfill_orders": bf_orders, "backfill_days": bf_days,
                   "defect_rate": args.defect_rate, "repeat": args.repeat, "partition": day},
        "machine": machine(), "versions": v, "peers": peers_status(v),
        "datasets": {}, "runs": {}, "peer_venvs": {}, "peer_runs": {}, "targets_met": {}, "notes": [],
        "peak_rss_method": "max of psutil polling (50 ms) of the process tree and "
                           + ("GNU time -v maximum RSS" if GNU_TIME else "(no /usr/bin/time)"),
    }
    for tool, why in res["peers"].items():
        if why:
            res["notes"].append(f"{tool}: {why}; skipped")
            log(f"{tool}: {why}; it is skipped")
    args.out.mkdir(parents=True, exist_ok=True)
    # the last run of this mode, read before this run's checkpoints replace it
    last_results = args.out / ("quick.json" if quick else "full.json")
    last_run = last_results.read_text() if last_results.exists() else "{}"
    tmp = Path(tempfile.mkdtemp(prefix="dq_bench_", dir=args.tmp))
    log(f"working in {tmp}")
    failures: list[str] = []
    t_all = time.perf_counter()

    def checkpoint(stage: str) -> None:
        res["in_progress"] = stage
        save(res, args.out, quick, failures, t_all)

    try:
        from benchmarks.graph_spec import write_graph_spec
        spec = write_graph_spec(tmp / "noop_graph.json")
        shutil.copy(tmp / "noop_graph.json", args.out / "noop_graph.json")
        res["graph"] = {"nodes": len(spec["nodes"]),
                        "assets": sum(len(n["specs"]) for n in spec["nodes"]),
                        "checks": sum(len(n["checks"]) for n in spec["nodes"])
                        + sum(len(g["checks"]) for g in spec["check_groups"])}
        log(f"graph: {res['graph']}")

        # -- datasets
        if not {"big", "checks", "peers"} <= skip:
            res["datasets"]["big_day"] = generate(tmp, "land_big", start, 1, orders, DEFECTS,
                                                  args.defect_rate, args.timeout)
        if "tiny" not in skip:
            res["datasets"]["tiny_day"] = generate(tmp, "land_tiny", start, 1, args.tiny_orders,
                                                   timeout=args.timeout)

        checkpoint("datasets")

        # -- Dagster's floor and the tiny day
        if "floor" not in skip:
            log(f"no-op graph, 1 day x{args.repeat}")
            res["runs"]["noop_day"] = repeated(tmp, "noop_day", args.repeat, module="benchmarks.noop_defs",
                                               landing=tmp / "land_tiny", partition=day, timeout=args.timeout)
        if "tiny" not in skip:
            log(f"tiny day ({args.tiny_orders} orders) x{args.repeat}")
            res["runs"]["tiny_day"] = repeated(tmp, "tiny_day", args.repeat, module="dq_assets",
                                               landing=tmp / "land_tiny", partition=day, timeout=args.timeout)

        checkpoint("floor and tiny day")

        # -- the big day
        if "big" not in skip:
            log(f"big day ({orders:,} orders) end to end")
            big = materialize(tmp, "big_day", "dq_assets", tmp / "land_big", partition=day,
                              timeout=args.timeout)
            big["warehouse_rows"] = warehouse_rows(big)
            big["tables"] = big_day_tables(big, last_run, orders)
            res["runs"]["big_day"] = big
            checkpoint("big day")

        # -- the check suite alone
        if "checks" not in skip:
            tools = ["dq_assets", "duckdb_sql"]
            soda_python = None
            if "peers" not in skip:
                tools += [t for t in ("pandera", "great_expectations") if not res["peers"].get(t)]
                log(f"peers: the Soda virtualenv ({args.peers_venv / 'soda'})")
                venv = res["peer_venvs"]["soda"] = ensure_venv("soda", args.peers_venv)
                if venv["ok"]:
                    tools.append("soda")
                    soda_python = venv["python"]
                else:
                    log(f"  FAILED: {venv['error']}")
            log(f"check suite: {', '.join(tools)}")
            out = tmp / "check_suite.json"
            cmd = [sys.executable, "-m", "benchmarks.check_suite", "--landing", str(tmp / "land_big"),
                   "--date", day, "--out", str(out), "--tools", ",".join(tools),
                   "--work", str(tmp / "check_suite_work")]
            if soda_python:
                cmd += ["--soda-python", soda_python]
            r = run_measured(cmd, env=base_env(), cwd=str(REPO), log=tmp / "logs" / "check_suite.log",
                             timeout=args.timeout)
            for line in (tmp / "logs" / "check_suite.log").read_text(errors="replace").splitlines():
                if line.startswith("check suite:"):
                    print("  " + line, flush=True)
            cs = json.loads(out.read_text()) if out.exists() else {}
            cs["process"] = {"wall_s": r["wall_s"], "peak_mib": peak_mib(r), "exit_code": r["exit_code"]}
            if not out.exists() or r["timed_out"] or r["memory_killed"]:
                cs["error"] = (_why(r) + ": " + " | ".join(
                    (tmp / "logs" / "check_suite.log").read_text(errors="replace").splitlines()[-5:]))
            for tool, why in res["peers"].items():
                if why:
                    cs.setdefault("skipped", {})[tool] = why
            res["check_suite"] = cs
            checkpoint("check suite")

        # -- dbt on the same day's landing files
        if "peers" not in skip:
            log(f"peers: the dbt virtualenv ({args.peers_venv / 'dbt'})")
            venv = res["peer_venvs"]["dbt"] = ensure_venv("dbt", args.peers_venv)
            if venv["ok"]:
                res["peer_runs"]["dbt_build"] = run_dbt(tmp, venv, tmp / "land_big", day, args.timeout)
                res["peer_runs"]["dbt_build"]["pins"] = ", ".join(venv["pins"])
            else:
                log(f"  FAILED: {venv['error']}")
            checkpoint("dbt")

        # -- wall time against orders per day, for the plot (--scaling)
        if args.scaling:
            res["scaling"] = scaling(tmp, args, res, skip, start, day)
            checkpoint("scaling")

        if args.profile and "big" not in skip:
            res["profile"] = profile(tmp, tmp / "land_big", day, args.timeout)
            checkpoint("profile")

        # -- backfills (last: the longest runs)
        if "backfill" not in skip and bf_days:
            res["datasets"]["backfill"] = generate(tmp, "land_backfill", start, max(bf_days), bf_orders,
                                                   timeout=args.timeout)
            for days in sorted(bf_days):
                rng = day_range(start, days)
                log(f"backfill {days} days x {bf_orders:,} orders ({rng}), one run")
                res["runs"][f"backfill_{days}"] = materialize(
                    tmp, f"backfill_{days}", "dq_assets", tmp / "land_backfill",
                    partition_range=rng, timeout=args.timeout)
                checkpoint(f"backfill {days} days")
                res["runs"][f"noop_backfill_{days}"] = materialize(
                    tmp, f"noop_backfill_{days}", "benchmarks.noop_defs", tmp / "land_backfill",
                    partition_range=rng, timeout=args.timeout)
                checkpoint(f"no-op backfill {days} days")
                if args.pg_instance:
                    for module, name in (("dq_assets", f"backfill_{days}_pg"),
                                         ("benchmarks.noop_defs", f"noop_backfill_{days}_pg")):
                        log(f"{name}: Dagster's records in PostgreSQL, {PG_BACKFILL_SETTINGS}")
                        with PgInstance(args.pg_instance, name) as instance:
                            res["runs"][name] = materialize(
                                tmp, name, module, tmp / "land_backfill", partition_range=rng,
                                timeout=args.timeout, instance=instance)
                        checkpoint(name)

        # -- the aws deployment (after the backfills: it compares with them when it can)
        if args.aws and "aws" not in skip:
            aws.run_rows(sys.modules[__name__], tmp, args, res, start, checkpoint)

        # -- a distributed backfill: in process, celery, multi-day runs by the daemon
        if args.distributed and "distributed" not in skip:
            distributed.run_rows(sys.modules[__name__], tmp, args, res, start, checkpoint)
    except SystemExit as e:
        failures.append(str(e))
        log(f"FAILED: {e}")
    finally:
        res.pop("in_progress", None)
        text = save(res, args.out, quick, failures, t_all)
        # evaluate() (inside save) adds the failed runs, the tools' disagreements and the peers'
        # failures to the saved report: they decide the exit code too
        failures = json.loads((args.out / "latest.json").read_text()).get("failures", failures)
        print()
        print(text)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


def save(res: dict, out: Path, quick: bool, failures: list[str], t_all: float) -> str:
    """Write latest.json / latest.md (and quick.* or full.*); returns the markdown. Called after
    every stage too (marked in progress), so a run stopped from outside leaves its numbers."""
    import copy

    res = copy.deepcopy(res)
    failures = list(failures)
    res["total_s"] = round(time.perf_counter() - t_all, 1)
    res["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    evaluate(res, failures)
    if res.get("in_progress"):
        res["notes"].append(f"IN PROGRESS (written after: {res['in_progress']}); not a finished run")
    (out / "latest.json").write_text(json.dumps(res, indent=1, default=str) + "\n", encoding="utf-8")
    text = markdown(res)
    (out / "latest.md").write_text(text, encoding="utf-8")
    mode = "quick" if quick else "full"  # the last run of each mode stays too
    shutil.copy(out / "latest.json", out / f"{mode}.json")
    shutil.copy(out / "latest.md", out / f"{mode}.md")
    return text


def evaluate(res: dict, failures: list[str]) -> None:
    runs, met, notes = res["runs"], res["targets_met"], res["notes"]
    for name, r in runs.items():
        if not r.get("ok"):
            why = _why(r)
            failures.append(f"run {name} {why}; log tail: " + " | ".join(r.get("log_tail", [])[-5:]))
    big, tiny, floor = runs.get("big_day"), runs.get("tiny_day"), runs.get("noop_day")
    if big and big.get("ok"):
        met["big_day"] = big["wall_s"] <= TARGETS["big_day_s"] and (big["peak_mib"] or 0) <= TARGETS["big_day_rss_mib"]
    if tiny and floor and tiny.get("ok") and floor.get("ok"):
        met["tiny_vs_floor"] = tiny["wall_s"] <= TARGETS["tiny_vs_floor"] * floor["wall_s"]
    bf, noop = runs.get("backfill_365"), runs.get("noop_backfill_365")
    if bf:  # a run that did not finish did not meet it; without its no-op run, nothing to say
        if not bf.get("ok"):
            met["backfill_365"] = False
        elif noop and noop.get("ok"):
            met["backfill_365"] = bf["wall_s"] - noop["wall_s"] <= TARGETS["backfill_365_beyond_floor_s"]
    bf = runs.get("backfill_365_pg")
    if bf:
        met["backfill_365_pg"] = bool(bf.get("ok")) and bf["wall_s"] <= TARGETS["backfill_365_pg_s"]
    cs = res.get("check_suite")
    if cs:
        tools = cs.get("tools", {})
        if "dq_assets" in tools and "duckdb_sql" in tools:
            met["checks_vs_sql"] = tools["dq_assets"]["total_s"] <= TARGETS["checks_vs_sql"] * tools["duckdb_sql"]["total_s"]
        if cs.get("mismatches"):
            failures.append(f"check suite: {len(cs['mismatches'])} rule counts differ between tools: "
                            + "; ".join(f"{m['table']}.{m['rule']} {m['tool']} {m.get('got')} vs dq_assets {m.get('dq_assets')}"
                                        for m in cs["mismatches"][:10]))
        if cs.get("error"):
            failures.append(f"check suite: {cs['error']}")
        for tool, err in cs.get("errors", {}).items():
            failures.append(f"check suite: {tool} failed: {err}")
    for name, venv in res.get("peer_venvs", {}).items():
        if not venv.get("ok"):
            failures.append(f"peers: {venv.get('error')}")
    dbt = res.get("peer_runs", {}).get("dbt_build")
    if dbt:
        if not dbt.get("ok"):
            failures.append(f"dbt build {_why(dbt)}; log tail: " + " | ".join(dbt.get("log_tail", [])[-5:]))
        res["dbt_vs_dq_assets"] = cmp = dbt_vs_dq_assets(res)
        differ = [k for k, v in cmp.items() if not v["agree"]]
        if differ:
            notes.append("dbt's staged/quarantined rows differ from dq_assets' for " + ", ".join(
                f"{k} ({cmp[k]['dbt']:,} vs {cmp[k]['dq_assets']:,})" for k in differ))
    if big and big.get("ok") and not big.get("run_success"):
        notes.append("the big day's CLI exited 0 without RUN_SUCCESS in its log")
    if big and big.get("gate_failed"):
        notes.append("the big day FAILED its gate: the marts steps did not publish it")
    tables = (big or {}).get("tables") or {}
    if "differ_from_last_run" in tables:
        differ = tables["differ_from_last_run"]
        notes.append(f"the big day's {len(tables['checksums'])} tables are identical to the last run's "
                     "of the same size" if not differ else
                     f"the big day's tables DIFFER from the last run's of the same size: {', '.join(differ)}")
    aws.evaluate(res, failures)
    distributed.evaluate(res, failures)
    if res["params"]["quick"]:
        notes.append("--quick: small numbers; the targets are stated for the full run")
    res["failures"] = failures


if __name__ == "__main__":
    sys.exit(main())
