"""The `dq-generate` command line (also `python -m dq_assets.generator`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Sequence

from dq_assets.contract import tables as C
from dq_assets.generator.constants import LOG_FILE, UTC
from dq_assets.generator.defects import (
    DEFAULT_OPTION,
    DEFAULT_TABLE,
    KIND_HELP,
    KINDS,
    DefectError,
    parse_defect,
)
from dq_assets.generator.generate import generate


def _build_parser() -> argparse.ArgumentParser:
    kinds = "\n".join(f"  {k:<21} {KIND_HELP[k]}" for k in KINDS)
    def _opts(k: str) -> str:
        o = DEFAULT_OPTION[k]
        if any(o.values()):
            return " ".join(f"{t}@{v}" if v else t for t, v in o.items())
        return ", ".join(o)
    defaults = "\n".join(f"  {k:<21} [{DEFAULT_TABLE[k]}] {_opts(k)}" for k in KINDS)
    p = argparse.ArgumentParser(
        prog="dq-generate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate a deterministic landing zone (contract section 1) with optional defects.",
        epilog=f"""\
defect syntax: [TABLE.]KIND[@OPTION][=VALUE]
  TABLE   one of {', '.join(C.TABLE_NAMES)}, or * for every table where KIND applies
          (default: the kind's default table, below)
  OPTION  row-level kinds: the column; duplicate: exact|older|mixed; manifest_drift:
          rows|sha256|sum; missing_column: the column; extra_column: the new column's name;
          null_share: a nullable column; vanished_value: COLUMN.VALUE, an ENUM column and
          one of its accepted values (e.g. events.vanished_value@platform.android)
  VALUE   row-level, late_arriving, resent_orders: a count (integer >= 1) or a rate of the
          table's rows (< 1 or with a decimal point, e.g. 0.02); partial_load: hours removed
          (default 6); volume_drop: factor of normal volume (default 0.3); null_share: the
          further share of rows blanked (default 0.3); unit_change: the integer factor of
          every money amount (default 100). With --defect, the VALUE of manifest_drift,
          missing_file, unlisted_file, missing_column and extra_column is the probability
          per day (default 1).
  VALID drift (null_share, unit_change, vanished_value): rows the contract accepts, only a
          column's distribution changes that day; later days are generated as without it.

kinds:
{kinds}

[default table] then the tables it applies to, with the default OPTION:
{defaults}

examples:
  dq-generate --out data/landing --start 2025-01-01 --days 10 --orders-per-day 40
  dq-generate --out /tmp/demo --end yesterday --days 14 --orders-per-day 40   # a live-looking demo
  dq-generate --out /tmp/l --start 2025-01-01 --days 30 --defect '*.invalid_value=0.01' \\
      --defect duplicate=0.005 --on 2025-01-12:orders.invalid_value@currency=3 \\
      --on 2025-01-13:payments.missing_file --on 2025-01-20:volume_drop=0.3 --clean-dims-after-day-one
  dq-generate --out /tmp/d --start 2025-01-01 --days 10 --on 2025-01-08:events.null_share@customer_id=0.3 \\
      --on 2025-01-09:unit_change=100 --on 2025-01-10:events.vanished_value@platform.android

The log {LOG_FILE} (landing root) lists per day exactly what was injected.""",
    )
    p.add_argument("--out", required=True, help="landing root to write (e.g. data/landing)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--start", type=_iso_date, help="first ingest date YYYY-MM-DD")
    when.add_argument("--end", type=_end_date, metavar="yesterday|YYYY-MM-DD",
                      help="last ingest date instead: `yesterday` (UTC, the last complete day, so "
                           "that a demo's freshness checks pass) or a date; the days end there")
    p.add_argument("--days", required=True, type=int, help="number of daily partitions")
    p.add_argument("--orders-per-day", type=int, default=1000, help="orders per day (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--defect", action="append", default=[], metavar="[TABLE.]KIND[@OPT]=RATE",
                   help="inject KIND on every day (repeatable)")
    p.add_argument("--on", action="append", default=[], metavar="YYYY-MM-DD:[TABLE.]KIND[@OPT][=N]",
                   help="inject KIND on one day (repeatable)")
    p.add_argument("--clean-dims-after-day-one", action="store_true",
                   help="apply --defect specs to customers/products on the first day only")
    p.add_argument("--clean", action="store_true",
                   help="first remove every ingest_date=* folder under --out")
    return p


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def utc_today() -> date:
    """The generator's one use of the clock, for `--end yesterday` only."""
    return datetime.now(UTC).date()


def _end_date(text: str) -> date:
    """`yesterday` is the last complete UTC day (the partitions are UTC days); the output stays
    a function of (seed, dates)."""
    if text.strip().lower() == "yesterday":
        return utc_today() - timedelta(days=1)
    return _iso_date(text)


def first_day(start: date | None, end: date | None, days: int) -> date:
    """--start, or the first of `days` days that end on --end."""
    return start if start is not None else end - timedelta(days=max(days, 1) - 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    start = first_day(args.start, args.end, args.days)
    try:
        specs = [parse_defect(s) for s in args.defect]
        for s in specs:
            if s.day is not None:
                raise DefectError(f"--defect {s}: use --on for a single day")
        for s in args.on:
            spec = parse_defect(s)
            if spec.day is None:
                raise DefectError(f"--on {s}: expected YYYY-MM-DD:KIND")
            specs.append(spec)
        log = generate(args.out, start, args.days, args.orders_per_day, args.seed, specs,
                       args.clean_dims_after_day_one, clean=args.clean)
    except DefectError as e:
        print(f"dq-generate: {e}", file=sys.stderr)
        return 2
    n_inj = sum(len(d["injected"]) for d in log.days)
    first, last = log.days[0]["ingest_date"], log.days[-1]["ingest_date"]
    print(f"wrote {len(log.days)} partitions {first}..{last} to {args.out} "
          f"({n_inj} injections, log {LOG_FILE})")
    print("to load them, in daily partitions that start on the first day (docs/demo.md):")
    print(f"  export DQ_LANDING={shlex.quote(str(Path(args.out).resolve()))} DQ_PARTITIONS_START={first}")
    print(f"  dagster asset materialize -m dq_assets --select '*' --partition-range {first}...{last} "
          "-c dq_assets/console.yaml")
    return 0
