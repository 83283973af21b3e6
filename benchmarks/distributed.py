"""A distributed backfill, measured: `python -m benchmarks.run --distributed PG_URL`.

The same range (`--distributed-days` days at `--backfill-orders` orders a day) on the aws
deployment, four ways, each into a fresh warehouse (an S3 prefix on a moto server of its own and
a PostgreSQL database of its own) and with Dagster's instance in PostgreSQL (deploy/dagster.yaml,
a fresh database per variant: a celery worker must share the run's instance, so every variant
uses it, for comparability):

- `in_process`: one run, `dagster asset materialize --partition-range`, every step in the run's
  process (the reference: the other variants' outputs must equal its outputs);
- `celery_1`, `celery_2`: the same CLI with `DQ_EXECUTOR=celery`, its steps executed by one or two
  real `dagster-celery worker start -A dq_assets.celery_app` processes (`-c
  --celery-concurrency`, default 1: one step at a time per worker, so 1 and 2 workers are 1 and
  2 steps at once on this 2-core machine), each in a directory and DAGSTER_HOME of its own, on a
  queue of the variant's own on the RabbitMQ of `--broker`;
- `backfill`: an *asset backfill* of the range, launched through the webserver's GraphQL
  (`launchPartitionBackfill`, as the UI launches it: dq_assets.operations.backfills) and split
  into runs of `--backfill-run-days` days (`DQ_BACKFILL_RUN_DAYS`: every asset's backfill policy
  `multi_run(N)`), executed by a real `dagster-daemon run` (QueuedRunCoordinator, at most
  `--max-concurrent-runs` runs at once) with the default run launcher: each run a subprocess of
  the daemon's code server, its steps in process. Timed from the launch to the backfill's final
  status.

For each: wall time; peak RSS per process kind (psutil over every process this driver started,
sampled every 0.25 s: the run process(es), each celery worker with its pool children, moto, the
daemon, the webserver and their code servers), as the peak of one process and the peak of their
sum at one moment; and where the time goes, read afterwards from Dagster's event log in
PostgreSQL: per-step durations (STEP_START to STEP_SUCCESS), their sum, the critical path
through the step graph (from the execution plan) against the wall time, the union of the time
any step ran, runs and their start latency (created, dequeued, started), event-log rows and their
rate; for celery, the dispatch of each step (submitted by the run, taken by a worker, started);
S3 requests by bucket and method (moto's request log); peak PostgreSQL connections per database
(pg_stat_activity, every 0.5 s). Outputs (row counts per partition of every staging, quarantine
and mart table, revenue sums, gate decisions, check outcomes: benchmarks.aws.outputs) of every
variant must equal the in-process run's; a difference fails the benchmark (exit 1).
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack, contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks import aws
from dq_assets.operations.backfills import launch_asset_backfill, wait_for_backfill

DEFAULT_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
VARIANTS = ("in_process", "celery_1", "celery_2", "backfill")
LOGS_BUCKET = "dq-bench-dagster-logs"
DEPLOY_YAML = Path(__file__).resolve().parent.parent / "deploy" / "dagster.yaml"
MIB = 2**20


def label(variant: str, args) -> str:
    c = args.celery_concurrency
    return {
        "in_process": "one run, in process",
        "celery_1": f"one run, celery executor, 1 worker (-c {c})",
        "celery_2": f"one run, celery executor, 2 workers (-c {c} each)",
        "backfill": (f"asset backfill, runs of {args.backfill_run_days} days, daemon "
                     f"(max {args.max_concurrent_runs} runs at once)"),
    }[variant]


# ------------------------------------------------------------------ processes, measured


def kind_of(cmdline: list[str]) -> str:
    """What a process started (directly or not) by this driver is, from its command line."""
    text = " ".join(cmdline)
    if cmdline and Path(cmdline[0]).name == "time":
        return "time (wrapper)"
    if "moto.server" in text:
        return "moto"
    if "celery" in text and "worker" in text:
        return "celery worker"
    if "dagster-daemon" in text:
        return "daemon"
    if "dagster-webserver" in text:
        return "webserver"
    if "execute_run" in text or "asset materialize" in text or "execute_step" in text:
        return "run"
    if "resource_tracker" in text:
        return "other: multiprocessing resource tracker"
    if "spawn_main" in text:  # a run the code server started (multiprocessing, spawn)
        return "run"
    if cmdline and Path(cmdline[0]).name == "tail":  # Dagster's compute-log capture of a run
        return "run: log tail"
    if "api grpc" in text or "code-server" in text or "grpc" in text:
        return "code server"
    return "other: " + (Path(cmdline[0]).name if cmdline else "?")


class _Sampling:
    """A daemon thread (`_run`) from `with` to its end; `_stop` tells it to end."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class ProcessSampler(_Sampling):
    """Every `interval` s, the RSS of every descendant of this driver, by kind (kind_of): per
    kind the peak of one process, the peak of their sum at one moment and how many there were;
    and per named root (a celery worker, moto, the daemon) the peak of its whole tree."""

    def __init__(self, interval: float = 0.25):
        import psutil

        self.psutil, self.interval = psutil, interval
        self.roots: dict[str, int] = {}
        self.kinds: dict[int, str] = {}
        self.proc_peak: dict[int, int] = {}
        self.kind_sum_peak: Counter = Counter()
        self.root_peak: Counter = Counter()
        super().__init__()

    def root(self, name: str, pid: int) -> None:
        self.roots[name] = pid

    def _kind(self, p) -> str:
        if p.pid not in self.kinds:
            try:
                self.kinds[p.pid] = kind_of(p.cmdline())
            except self.psutil.Error:
                return "gone"
        return self.kinds[p.pid]

    def sample(self) -> None:
        ps = self.psutil
        try:
            procs = ps.Process(os.getpid()).children(recursive=True)
        except ps.Error:
            return
        rss, sums = {}, Counter()
        for p in procs:
            try:
                rss[p.pid] = p.memory_info().rss
            except ps.Error:
                continue
            kind = self._kind(p)
            sums[kind] += rss[p.pid]
            self.proc_peak[p.pid] = max(self.proc_peak.get(p.pid, 0), rss[p.pid])
        for kind, total in sums.items():
            self.kind_sum_peak[kind] = max(self.kind_sum_peak[kind], total)
        for name, pid in list(self.roots.items()):
            try:
                tree = [ps.Process(pid), *ps.Process(pid).children(recursive=True)]
            except ps.Error:
                continue
            total = sum(rss.get(p.pid, 0) for p in tree)
            self.root_peak[name] = max(self.root_peak[name], total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def report(self) -> dict:
        by_kind: dict[str, dict] = {}
        for pid, peak in self.proc_peak.items():
            k = self.kinds.get(pid, "gone")
            e = by_kind.setdefault(k, {"processes": 0, "max_one_mib": 0.0})
            e["processes"] += 1
            e["max_one_mib"] = max(e["max_one_mib"], round(peak / MIB, 1))
        for k, e in by_kind.items():
            e["peak_sum_mib"] = round(self.kind_sum_peak[k] / MIB, 1)
        return {"by_kind": dict(sorted(by_kind.items())),
                "by_root": {n: round(v / MIB, 1) for n, v in sorted(self.root_peak.items())}}


class PgActivity(_Sampling):
    """Peak connections per database of the server (pg_stat_activity, every `interval` s)."""

    def __init__(self, url: str, interval: float = 0.5):
        self.url, self.interval, self.peak, self.error = url, interval, Counter(), None
        super().__init__()

    def _run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self._stop.is_set():
                    for db, n in conn.execute("SELECT datname, count(*) FROM pg_stat_activity "
                                              "WHERE datname IS NOT NULL GROUP BY 1").fetchall():
                        self.peak[db] = max(self.peak[db], n)
                    self._stop.wait(self.interval)
        except Exception as e:  # noqa: BLE001 - a missing figure, not a failed benchmark
            self.error = f"{type(e).__name__}: {e}"


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """TERM to the process group of a process this driver started (its own session), KILL after
    `timeout`; then KILL whatever of the group is left (celery pool children, run workers)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def start(cmd: list[str], *, env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(cwd),
                                start_new_session=True)


def wait_for(what: str, ready, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}): "
                               + log.read_text(errors="replace")[-1500:])
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s: "
                               + log.read_text(errors="replace")[-1500:])
        time.sleep(0.5)


# ------------------------------------------------------------------ one variant's setting


def instance_env(bench, server_url: str, database: str) -> dict[str, str]:
    """deploy/dagster.yaml's variables for an instance database on `server_url`'s server, compute
    logs on the variant's moto; with Dagster's two settings for long backfills (deploy/README.md)."""
    u = urlsplit(server_url)
    return {**bench.PG_BACKFILL_SETTINGS,
            "DAGSTER_PG_HOST": u.hostname or "", "DAGSTER_PG_PORT": str(u.port or 5432),
            "DAGSTER_PG_DB": database, "DAGSTER_PG_USERNAME": u.username or "postgres",
            "DAGSTER_PG_PASSWORD": u.password or "",
            "DAGSTER_COMPUTE_LOGS_BUCKET": LOGS_BUCKET, "DAGSTER_COMPUTE_LOGS_PREFIX": "logs"}


def dagster_home(path: Path, max_runs: int | None = None) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.yaml; with `max_runs`, its run queue's limit of runs
    at once (and a limit on backfill runs, where the file has one) set to `max_runs`."""
    path.mkdir(parents=True, exist_ok=True)
    text = DEPLOY_YAML.read_text(encoding="utf-8")
    if max_runs is not None:
        text, n = re.subn(r"max_concurrent_runs: \d+", f"max_concurrent_runs: {max_runs}", text)
        if n != 1:
            raise RuntimeError("deploy/dagster.yaml: no max_concurrent_runs to set; update distributed.py")
        text = re.sub(r"(key: dagster/backfill\n\s+limit: )\d+", rf"\g<1>{max_runs}", text)
    (path / "dagster.yaml").write_text(text, encoding="utf-8")
    return path


def step_graph(bench, env: dict, first: str, last: str, out: Path) -> dict[str, list[str]]:
    """{step key: the step keys it waits for} of the code location's asset job, from Dagster's
    execution plan, built in a subprocess with the variant's environment."""
    code = (
        "import json, sys\n"
        "from dagster._core.execution.api import create_execution_plan\n"
        "from dq_assets.definitions import defs\n"
        "job = defs.resolve_implicit_global_asset_job_def()\n"
        f"plan = create_execution_plan(job, tags={{'dagster/asset_partition_range_start': {first!r}, "
        f"'dagster/asset_partition_range_end': {last!r}}})\n"
        "deps = {s.key: sorted(s.get_execution_dependency_keys()) for s in plan.get_all_steps_in_topo_order()}\n"
        f"open({str(out)!r}, 'w').write(json.dumps(deps))\n")
    subprocess.run([sys.executable, "-c", code], env=env, cwd=str(bench.REPO), check=True,
                   capture_output=True, timeout=300)
    return json.loads(out.read_text())


# ------------------------------------------------------------------ where the time goes


def critical_path(durations: dict[str, float], deps: dict[str, list[str]]) -> tuple[float, list[str]]:
    """The longest chain of measured step durations through the step graph."""
    best: dict[str, tuple[float, list[str]]] = {}

    def longest(step: str) -> tuple[float, list[str]]:
        if step not in best:
            up = [longest(d) for d in deps.get(step, []) if d in durations]
            t, path = max(up, default=(0.0, []))
            best[step] = (t + durations[step], [*path, step])
        return best[step]

    return max((longest(s) for s in durations), default=(0.0, []))


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total, end = total + (b - a), b
        elif b > end:
            total, end = total + (b - end), b
    return total


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    now = peak = 0
    for _, d in edges:
        now += d
        peak = max(peak, now)
    return peak


def event_log(url: str, deps: dict[str, list[str]], wall_s: float, t0: float) -> dict:
    """Where the time went, from the instance's runs and event log (PostgreSQL)."""
    import psycopg

    with psycopg.connect(url) as conn:
        def q(sql: str) -> list[tuple]:
            return conn.execute(sql).fetchall()

        runs = q("SELECT run_id, status, extract(epoch FROM create_timestamp)::float8, start_time, end_time FROM runs "
                 "ORDER BY create_timestamp")
        rows = q("SELECT run_id, dagster_event_type, step_key, "
                 "extract(epoch FROM timestamp)::float8, "
                 "CASE WHEN dagster_event_type = 'ENGINE_EVENT' THEN event END FROM event_logs ORDER BY id")
        by_type = dict(q("SELECT coalesce(dagster_event_type, '(log message)'), count(*) FROM event_logs "
                         "GROUP BY 1 ORDER BY 2 DESC"))
        total_rows = sum(by_type.values())
        backfills = q("SELECT key, status, extract(epoch FROM timestamp)::float8 FROM bulk_actions")
    created = {r: c for r, _, c, _, _ in runs}
    run_events: dict[str, dict[str, float]] = defaultdict(dict)
    start, end, submitted, taken = {}, {}, {}, {}
    for run_id, kind, step, ts, event in rows:
        if kind and kind.startswith("PIPELINE_"):  # the event log's names of the run events
            kind = "RUN_" + kind.removeprefix("PIPELINE_")
        if kind and kind.startswith("RUN_"):
            run_events[run_id].setdefault(kind, ts)
        if not step:
            continue
        key = (run_id, step)
        if kind == "STEP_START":
            start.setdefault(key, ts)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            end[key] = ts
        elif kind == "ENGINE_EVENT" and event:
            if "Submitting celery task" in event:
                submitted.setdefault(key, ts)
            elif "in celery worker" in event:
                taken.setdefault(key, ts)
    durations: dict[str, dict[str, float]] = defaultdict(dict)
    intervals = []
    for key, a in start.items():
        if key in end:
            durations[key[0]][key[1]] = end[key] - a
            intervals.append((a, end[key]))
    per_step = Counter()
    for d in durations.values():
        for s, t in d.items():
            per_step[s] += t
    out: dict = {
        "runs": len(runs), "run_status": dict(Counter(s for _, s, _, _, _ in runs)),
        "steps_executed": len(intervals),
        "step_s_total": round(sum(b - a for a, b in intervals), 1),
        "step_busy_s": round(_union(intervals), 1),
        "max_steps_at_once": _max_overlap(intervals),
        "steps_s": {s: round(t, 2) for s, t in per_step.most_common()},
        "event_rows": total_rows, "event_rows_per_s": round(total_rows / wall_s, 1) if wall_s else None,
        "event_rows_by_type": by_type,
        "event_rows_per_step": round(total_rows / len(intervals), 1) if intervals else None,
        "event_rows_per_run": round(total_rows / len(runs), 1) if runs else None,
    }
    paths = {r: critical_path(d, deps) for r, d in durations.items()}
    if len(runs) == 1 and paths:
        t, path = next(iter(paths.values()))
        out["critical_path_s"], out["critical_path"] = round(t, 1), path
        out["overhead_s"] = round(wall_s - t, 1)
    elif paths:
        out["critical_path_per_run_s"] = {r[:8]: round(t, 1) for r, (t, _) in paths.items()}
    # runs: created -> (enqueued, dequeued) -> started -> ended
    stages = defaultdict(list)
    timeline = []
    for run_id, status, c, st, en in runs:
        ev = run_events.get(run_id, {})
        begin = ev.get("RUN_START", st)
        if begin:
            stages["created_to_started_s"].append(begin - created[run_id])
        if ev.get("RUN_ENQUEUED"):
            stages["created_to_enqueued_s"].append(ev["RUN_ENQUEUED"] - created[run_id])
        if ev.get("RUN_STARTING") and ev.get("RUN_ENQUEUED"):
            stages["queued_s"].append(ev["RUN_STARTING"] - ev["RUN_ENQUEUED"])
        if ev.get("RUN_STARTING") and begin:
            stages["starting_to_started_s"].append(begin - ev["RUN_STARTING"])
        finish = ev.get("RUN_SUCCESS") or ev.get("RUN_FAILURE") or en
        if begin and finish:
            stages["run_s"].append(finish - begin)
        steps = durations.get(run_id, {})
        timeline.append({"run": run_id[:8], "status": status,
                         "created_at_s": round(created[run_id] - t0, 1),
                         "started_at_s": round(begin - t0, 1) if begin else None,
                         "ended_at_s": round(finish - t0, 1) if finish else None,
                         "steps": len(steps), "step_s": round(sum(steps.values()), 1)})
    out["run_stages"] = {k: _stats(v) for k, v in stages.items()}
    out["runs_timeline"] = timeline
    if created:
        first, last = min(created.values()), max(created.values())
        out["runs_created_over_s"] = round(last - first, 1)
        out["first_run_created_after_s"] = round(first - t0, 1)
        ends = [r["ended_at_s"] for r in timeline if r["ended_at_s"] is not None]
        if ends:
            out["last_run_ended_at_s"] = max(ends)
    if backfills:
        out["backfills"] = [{"id": k, "status": s, "created_at_s": round(ts - t0, 1)} for k, s, ts in backfills]
    if submitted:
        dispatch = [taken[k] - submitted[k] for k in submitted if k in taken]
        to_start = [start[k] - taken[k] for k in taken if k in start]
        out["celery"] = {"submitted_to_worker_s": _stats(dispatch),
                         "worker_to_step_start_s": _stats(to_start),
                         "steps": len(submitted)}
    return out


def _stats(values: list[float]) -> dict:
    if not values:
        return {}
    return {"n": len(values), "median": round(statistics.median(values), 2),
            "max": round(max(values), 2), "sum": round(sum(values), 1)}


_REQUEST = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) /([^/?" ]*)[^"]*" (\d{3})')


def s3_requests(log: Path, offset: int) -> dict:
    """S3 requests moto served after byte `offset` of its log (werkzeug's request lines): by
    bucket and method, and the errors."""
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    by = Counter()
    errors = Counter()
    for method, bucket, status in _REQUEST.findall(text):
        if bucket == "moto-api":
            continue
        by[f"{bucket} {method}"] += 1
        if status >= "400":
            errors[f"{bucket} {method} {status}"] += 1
    return {"total": sum(by.values()), "by_bucket_method": dict(by.most_common()),
            "errors": dict(errors.most_common())}


# ------------------------------------------------------------------ the variants


@contextmanager
def celery_workers(n: int, concurrency: int, env: dict, root: Path, sampler: ProcessSampler, bench):
    """`n` real `dagster-celery worker start` processes on the variant's queue, each with its
    own cwd and DAGSTER_HOME (deploy/dagster.yaml); stopped (warm, then their group) after."""
    procs = []
    try:
        for i in range(n):
            name = f"w{i + 1}"
            cwd = root / "workers" / name
            home = dagster_home(cwd / "dagster_home")
            log = cwd / "worker.log"
            proc = start([bench.bin_path("dagster-celery"), "worker", "start", "-A", "dq_assets.celery_app",
                          "-q", env["DQ_CELERY_QUEUE"], "-n", f"{name}-{env['DQ_CELERY_QUEUE']}",
                          "--loglevel", "INFO", "--", "-c", str(concurrency)],
                         env={**env, "DAGSTER_HOME": str(home)}, cwd=cwd, log=log)
            procs.append((name, proc, log))
            sampler.root(f"celery worker {name}", proc.pid)
        for name, proc, log in procs:
            wait_for(f"celery worker {name}", lambda log=log: "ready." in log.read_text(errors="replace"),
                     proc, log, timeout=180)
        yield procs
    finally:
        for _, proc, _ in procs:
            stop_group(proc)
        from kombu import Connection

        with suppress(Exception), Connection(env["DQ_CELERY_BROKER_URL"], connect_timeout=5) as conn:
            conn.default_channel.queue_delete(env["DQ_CELERY_QUEUE"])  # else an empty queue is left


_TASK = re.compile(r"succeeded in ([0-9.]+)s: .*?Executing steps (\S+) in celery worker")


def worker_tasks(logs: list[Path], step_s: dict[str, float]) -> dict:
    """Each worker's tasks from its log (`Task execute_plan[...] succeeded in S s`): how many, their
    seconds, and those seconds beyond the step's own (STEP_START to STEP_SUCCESS in the event
    log): what a step costs a worker besides the step (the job and plan rebuilt, the instance
    opened, the events serialized back)."""
    out, beyond = {}, []
    for log in logs:
        tasks = [(float(t), step) for t, step in _TASK.findall(log.read_text(errors="replace"))]
        out[log.parent.name] = {"tasks": len(tasks), "task_s": round(sum(t for t, _ in tasks), 1)}
        beyond += [t - step_s[step] for t, step in tasks if step in step_s]
    return {"workers": out, "task_beyond_step_s": _stats(beyond)}


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def _location_loaded(url: str) -> bool:
    try:
        data = _graphql(url, "{ repositoriesOrError { __typename ... on RepositoryConnection "
                             "{ nodes { name } } } }")
    except Exception:  # noqa: BLE001 - not up yet
        return False
    return bool((data.get("data") or {}).get("repositoriesOrError", {}).get("nodes"))


def run_backfill(bench, args, env: dict, root: Path, sampler: ProcessSampler, first: str, last: str) -> dict:
    """The webserver and the daemon on the variant's instance; an asset backfill of first..last
    launched through GraphQL; timed from the launch to its final status."""
    port = aws.free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/graphql"
    web_log, daemon_log = root / "webserver.log", root / "daemon.log"
    out: dict = {"graphql": url}
    with ExitStack() as stack:
        web = start([bench.bin_path("dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
                     "-p", str(port)], env=env, cwd=bench.REPO, log=web_log)
        stack.callback(stop_group, web)
        sampler.root("webserver", web.pid)
        daemon = start([bench.bin_path("dagster-daemon"), "run", "-w", "workspace.yaml"],
                       env=env, cwd=bench.REPO, log=daemon_log)
        stack.callback(stop_group, daemon)
        sampler.root("daemon", daemon.pid)
        t_up = time.perf_counter()
        wait_for("dagster-webserver", lambda: _location_loaded(url), web, web_log, timeout=240)
        out["webserver_ready_s"] = round(time.perf_counter() - t_up, 1)
        t0 = time.perf_counter()
        out["launched_at"] = time.time()
        backfill_id = launch_asset_backfill(base, first, last, title=f"bench {first}...{last}")
        out["backfill_id"] = backfill_id
        state = wait_for_backfill(base, backfill_id, args.timeout)
        out["wall_s"] = round(time.perf_counter() - t0, 3)
        status = state.get("status") if isinstance(state, dict) else state
        out["status"] = status
        if isinstance(state, dict):
            out["run_statuses"] = dict(Counter(r.get("status") for r in state.get("runs", [])))
            if state.get("error"):
                out["backfill_error"] = state["error"]
        out["ok"] = str(status).upper() in ("COMPLETED", "COMPLETED_SUCCESS") and set(
            out.get("run_statuses", {"SUCCESS": 1})) == {"SUCCESS"}
        bench.log(f"  backfill {backfill_id}: {status} after {out['wall_s']:.1f} s")
    return out


def one(bench, tmp: Path, args, res: dict, variant: str, landing: Path, keys: list[str],
        rng: str, deps_cache: dict) -> dict:
    """One variant in a fresh setting: moto, a warehouse database, an instance database."""
    name = f"dist_{variant}"
    entry: dict = {"variant": variant, "label": label(variant, args)}
    root = tmp / "runs" / f"{name}_setting"  # (bench.materialize clears runs/NAME)
    bench.log(f"{name}: {entry['label']}")
    first, last = keys[0], keys[-1]
    try:
        with ExitStack() as stack:
            moto = stack.enter_context(aws.MotoServer(tmp / "logs" / f"moto_{name}.log"))
            warehouse = stack.enter_context(bench.PgInstance(args.distributed, f"{name}_wh"))
            instance = stack.enter_context(bench.PgInstance(args.distributed, f"{name}_dagster"))
            client = moto.client()
            entry["upload"] = aws.upload(client, landing, keys)
            client.create_bucket(Bucket=LOGS_BUCKET)
            wh_url = aws.database_url(args.distributed, warehouse.database)
            env = bench.base_env()
            for var, value in aws.run_env(moto.endpoint, wh_url).items():
                if value is None:
                    env.pop(var, None)
                else:
                    env[var] = value
            env.update(instance_env(bench, args.distributed, instance.database))
            for var in ("DQ_EXECUTOR", "DQ_BACKFILL_RUN_DAYS", "DQ_CELERY_QUEUE", "DAGSTER_HOME"):
                env.pop(var, None)
            env["DQ_S3_PREFIX"] = f"{aws.WAREHOUSE_PREFIX}/{variant}"
            if variant.startswith("celery"):
                env.update({"DQ_EXECUTOR": "celery", "DQ_CELERY_BROKER_URL": args.broker,
                            "DQ_CELERY_QUEUE": f"dq-bench-{uuid.uuid4().hex[:10]}"})
            if not deps_cache:
                deps_cache.update(step_graph(bench, env, first, last, tmp / "step_graph.json"))
            home = dagster_home(root / "home", args.max_concurrent_runs if variant == "backfill" else None)
            env["DAGSTER_HOME"] = str(home)
            if variant == "backfill":
                env["DQ_BACKFILL_RUN_DAYS"] = str(args.backfill_run_days)
            moto_offset = moto.log.stat().st_size
            sampler = stack.enter_context(ProcessSampler())
            sampler.root("moto", moto.proc.pid)
            activity = stack.enter_context(PgActivity(args.distributed))
            moto_use: dict = {}
            with moto.during(moto_use):
                t0 = time.time()
                if variant == "backfill":
                    run = run_backfill(bench, args, env, root, sampler, first, last)
                else:
                    n = int(variant.split("_")[1]) if variant.startswith("celery") else 0
                    workers = stack.enter_context(celery_workers(
                        n, args.celery_concurrency, env, root, sampler, bench)) if n else []
                    entry["workers"] = [w for w, _, _ in workers]
                    t0 = time.time()
                    run = bench.materialize(tmp, name, "dq_assets", env["DQ_LANDING"], partition_range=rng,
                                            timeout=args.timeout, extra_env=env)
            sampler.__exit__(None, None, None)
            activity.__exit__(None, None, None)
            entry["run"] = {k: v for k, v in run.items() if k not in ("steps",)}
            entry["wall_s"], entry["ok"] = run["wall_s"], run["ok"]
            entry["moto"] = moto_use
            entry["rss"] = sampler.report()
            entry["pg_connections_peak"] = {"warehouse": activity.peak.get(warehouse.database, 0),
                                            "instance": activity.peak.get(instance.database, 0)}
            if activity.error:
                entry["pg_connections_error"] = activity.error
            entry["s3_requests"] = s3_requests(moto.log, moto_offset)
            entry["s3_raw"] = aws.stored(client, aws.WAREHOUSE_BUCKET)
            entry["events"] = event_log(aws.database_url(args.distributed, instance.database),
                                        deps_cache, run["wall_s"], run.get("launched_at", t0))
            if variant.startswith("celery"):
                entry["worker_tasks"] = worker_tasks(
                    sorted((root / "workers").glob("*/worker.log")), entry["events"]["steps_s"])
            try:  # a failed variant's too: what differs says where it failed
                entry["outputs"] = aws.pg_outputs(wh_url, keys)
            except Exception as e:  # noqa: BLE001 - e.g. no table written at all
                entry["outputs_error"] = f"{type(e).__name__}: {e}"
            bench.log(f"  {name}: {run['wall_s']:.1f} s, " + summary(entry))
    except Exception as e:  # noqa: BLE001 - a failed row of the report, not a crash
        entry["error"] = f"{type(e).__name__}: {e}"
        entry["ok"] = False
        bench.log(f"  FAILED: {entry['error'][:800]}")
    return entry


def summary(e: dict) -> str:
    ev = e.get("events") or {}
    parts = [(f"{ev.get('runs')} run(s), {ev.get('steps_executed')} steps, step time "
              f"{ev.get('step_s_total')} s (busy {ev.get('step_busy_s')} s, at most "
              f"{ev.get('max_steps_at_once')} at once)")]
    if "critical_path_s" in ev:
        parts.append(f"critical path {ev['critical_path_s']} s")
    parts.append(f"{ev.get('event_rows')} event rows ({ev.get('event_rows_per_s')}/s)")
    parts.append(f"{e.get('s3_requests', {}).get('total')} S3 requests")
    rss = (e.get("rss") or {}).get("by_kind", {})
    parts.append("peak RSS " + ", ".join(f"{k} {v['max_one_mib']:,.0f}" + (f" (sum {v['peak_sum_mib']:,.0f})" if v["processes"] > 1 else "")
                                         for k, v in rss.items() if v["max_one_mib"] >= 20))
    return "; ".join(parts)


def run_rows(bench, tmp: Path, args, res: dict, start, checkpoint) -> None:
    """Every variant of `--distributed-variants` over the same landing files, then the outputs
    compared with the in-process variant's."""
    quick = res["params"]["quick"]
    days = args.distributed_days or (3 if quick else 30)
    orders = res["params"]["backfill_orders"]
    variants = [v for v in (args.distributed_variants or ",".join(VARIANTS)).split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--distributed-variants: unknown {sorted(unknown)}; expected {', '.join(VARIANTS)}")
    keys = [(start + timedelta(days=i)).isoformat() for i in range(days)]
    rng = bench.day_range(start, days)
    res["params"].update({"distributed": True, "distributed_days": days, "distributed_variants": variants,
                          "celery_concurrency": args.celery_concurrency,
                          "backfill_run_days": args.backfill_run_days,
                          "max_concurrent_runs": args.max_concurrent_runs,
                          "distributed_pg_server": urlsplit(args.distributed).netloc.rpartition("@")[2],
                          "load_before": os.getloadavg()})
    landing = aws.range_landing(bench, tmp, res, "distributed", start, days, orders, args.timeout)
    out = res.setdefault("distributed", {})
    deps: dict = {}
    for variant in variants:
        load = os.getloadavg()
        out[variant] = entry = one(bench, tmp, args, res, variant, landing, keys, rng, deps)
        entry["load_before"] = [round(x, 2) for x in load]
        checkpoint(f"distributed {variant}")
    ref = out.get("in_process")
    for variant, entry in out.items():
        if variant == "in_process" or not entry.get("outputs"):
            continue
        if ref and ref.get("outputs"):
            entry["comparison"] = cmp = aws.compare(ref["outputs"], entry["outputs"])
            bench.log(f"  {variant} outputs vs in process: " + aws.describe(cmp).replace("DuckDB", "in process")
                      .replace("aws", variant))
    for entry in out.values():
        entry.pop("outputs", None)
    res["step_graph"] = deps


# ------------------------------------------------------------------ report


def _mib(v) -> str:
    return "-" if not v else f"{v:,.0f}"


def table(res: dict) -> list[str]:
    out = res.get("distributed") or {}
    if not out:
        return []
    p = res["params"]
    lines = ["", (f"## Distributed backfill (`--distributed`): {p['distributed_days']} days x "
                  f"{p['backfill_orders']:,} orders, aws deployment, instance in PostgreSQL"), "",
             ("| variant | wall s | runs | steps (at most at once) | step s, sum | some step running, s | "
              "no step running, s | critical path s | event rows (/s) | S3 requests | peak RSS MiB: run(s) | "
              "celery workers | moto | daemon, webserver, code servers | same outputs |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for v, e in out.items():
        if e.get("error"):
            lines.append(f"| {e['label']} (**FAILED**: {e['error'][:300]}) |" + " |" * 14)
            continue
        ev, rss = e.get("events") or {}, (e.get("rss") or {}).get("by_kind", {})
        if ev.get("critical_path_s") is not None:
            cp = f"{ev['critical_path_s']:.1f}"
        elif ev.get("critical_path_per_run_s"):
            per = list(ev["critical_path_per_run_s"].values())
            cp = f"per run: max {max(per):.0f}, sum {sum(per):.0f}"
        else:
            cp = "-"
        run = rss.get("run", {})
        run_txt = _mib(run.get("max_one_mib")) + (f" each, {_mib(run.get('peak_sum_mib'))} at once ({run['processes']} proc.)"
                                                  if run.get("processes", 0) > 1 else "")
        roots = (e.get("rss") or {}).get("by_root", {})
        workers = " + ".join(_mib(m) for n, m in roots.items() if n.startswith("celery worker")) or "-"
        svc = [f"{k} {_mib(rss[k]['max_one_mib'])}" for k in ("daemon", "webserver") if k in rss]
        if "code server" in rss:
            c = rss["code server"]
            svc.append(f"code server {_mib(c['max_one_mib'])} (x{c['processes']})")
        cmp = e.get("comparison")
        same = "(reference)" if v == "in_process" else "-" if not cmp else (
            "yes" if cmp["agree"] else f"**no** ({len(cmp['differences'])} differ)")
        note = "" if e.get("ok") else " (**not ok**)"
        idle = round(e["wall_s"] - ev.get("step_busy_s", 0), 1)
        lines.append(f"| {e['label']}{note} | {e['wall_s']:.1f} | {ev.get('runs')} | {ev.get('steps_executed')} "
                     f"({ev.get('max_steps_at_once')}) | {ev.get('step_s_total')} | {ev.get('step_busy_s')} | {idle} | {cp} | "
                     f"{ev.get('event_rows', 0):,} ({ev.get('event_rows_per_s')}) | {e['s3_requests']['total']:,} | "
                     f"{run_txt} | {workers} | {_mib((e.get('moto') or {}).get('peak_rss_mib'))} | "
                     f"{', '.join(svc) or '-'} | {same} |")
    return lines


def details(res: dict) -> list[str]:
    out = res.get("distributed") or {}
    if not out:
        return []
    lines = ["", "### Where the time goes (Dagster's event log in PostgreSQL)", ""]
    ref = (out.get("in_process") or {}).get("events", {}).get("steps_s", {})
    for v, e in out.items():
        ev = e.get("events")
        if not ev:
            continue
        parts = [f"- **{e['label']}** (load before {e.get('load_before')}):",
                 (f"{ev['runs']} run(s) {ev['run_status']}, {ev['steps_executed']} steps, at most "
                  f"{ev['max_steps_at_once']} at once; steps ran {ev['step_s_total']} s in all, some step was "
                  f"running during {ev['step_busy_s']} s of the {e['wall_s']:.1f} s;")]
        if ev.get("critical_path"):
            parts.append(f"critical path {ev['critical_path_s']} s (`{'` → `'.join(ev['critical_path'])}`);")
        st = ev.get("run_stages") or {}
        if st.get("created_to_started_s"):
            parts.append("run created → started: median " + f"{st['created_to_started_s']['median']} s, max "
                         f"{st['created_to_started_s']['max']} s;")
        if st.get("created_to_enqueued_s"):
            parts.append(f"created → enqueued: median {st['created_to_enqueued_s']['median']} s;")
        if st.get("queued_s"):
            parts.append(f"in the run queue (enqueued → launched): median {st['queued_s']['median']} s, "
                         f"max {st['queued_s']['max']} s;")
        if st.get("starting_to_started_s"):
            parts.append(f"launched → started (process start, code load): median "
                         f"{st['starting_to_started_s']['median']} s;")
        if v == "backfill" and ev.get("first_run_created_after_s") is not None:
            bf = (ev.get("backfills") or [{}])[0]
            parts.append(f"after the launch: backfill stored at {bf.get('created_at_s')} s, first run created at "
                         f"{ev['first_run_created_after_s']} s, the {ev['runs']} runs created over "
                         f"{ev['runs_created_over_s']} s, the last run ended at {ev.get('last_run_ended_at_s')} s, "
                         f"the backfill seen done at {e['wall_s']:.1f} s (the webserver and daemon were up "
                         f"{(e.get('run') or {}).get('webserver_ready_s')} s before the launch);")
        cel = ev.get("celery")
        if cel:
            parts.append(f"celery: submitted → taken by a worker median {cel['submitted_to_worker_s'].get('median')} s "
                         f"(sum {cel['submitted_to_worker_s'].get('sum')} s), taken → STEP_START median "
                         f"{cel['worker_to_step_start_s'].get('median')} s (sum {cel['worker_to_step_start_s'].get('sum')} s);")
        wt = e.get("worker_tasks")
        if wt:
            parts.append("worker tasks: " + ", ".join(f"{w} {x['tasks']} ({x['task_s']} s)" for w, x in wt["workers"].items())
                         + f", each {wt['task_beyond_step_s'].get('median')} s (median) beyond its step;")
        parts.append(f"{ev['event_rows']:,} event-log rows ({ev['event_rows_per_s']}/s of wall time, "
                     f"{ev['event_rows_per_step']} per step);")
        s3 = e["s3_requests"]
        parts.append(f"S3: {s3['total']:,} requests (" + ", ".join(f"{k} {n:,}" for k, n in s3["by_bucket_method"].items())
                     + ");")
        pgc = e.get("pg_connections_peak") or {}
        parts.append(f"PostgreSQL connections at most: warehouse {pgc.get('warehouse')}, instance {pgc.get('instance')}.")
        lines.append(" ".join(parts))
        steps = ev.get("steps_s") or {}
        if steps:
            lines.append("  Slowest steps, s" + (" (in process)" if v != "in_process" and ref else "") + ": " + ", ".join(
                f"`{s}` {t:.1f}" + (f" ({ref[s]:.1f})" if v != "in_process" and s in ref else "")
                for s, t in list(steps.items())[:8]) + ".")
        if ev.get("runs_timeline") and len(ev["runs_timeline"]) > 1:
            lines.append("  Runs (s after the launch: created / started / ended, steps): " + "; ".join(
                f"{r['created_at_s']}/{r['started_at_s']}/{r['ended_at_s']} {r['steps']}" for r in ev["runs_timeline"]) + ".")
        cmp = e.get("comparison")
        if cmp:
            lines.append("  Outputs against the in-process run's: "
                         + aws.describe(cmp).replace("DuckDB", "in process").replace("aws", v) + ".")
    return lines


def evaluate(res: dict, failures: list[str]) -> None:
    for v, e in (res.get("distributed") or {}).items():
        if e.get("error"):
            failures.append(f"distributed {v}: {e['error'][:600]}")
        elif not e.get("ok"):
            failures.append(f"distributed {v}: not ok ({(e.get('run') or {}).get('status') or (e.get('run') or {}).get('exit_code')})")
        cmp = e.get("comparison")
        if cmp and not cmp["agree"]:
            failures.append(f"distributed {v}: outputs differ from the in-process run's: "
                            + "; ".join(cmp["differences"][:10]))
        elif v != "in_process" and e.get("ok") and not cmp:
            failures.append(f"distributed {v}: outputs not compared (the in-process run failed or did not run)")
