"""`generate`: a run of daily partitions into a landing root, and its log."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Sequence

from dq_assets.contract import tables as C
from dq_assets.generator.constants import (
    BAD_COUNTRIES,
    BAD_CURRENCIES,
    BAD_ENUMS,
    COUNTRIES,
    CURRENCIES,
    LOG_FILE,
    PARTITION_PREFIX,
)
from dq_assets.generator.day import _Day
from dq_assets.generator.defects import DefectError, DefectSpec, _spec_tables, parse_defect
from dq_assets.generator.log import GenerationLog
from dq_assets.generator.state import Config, State


def generate(
    out_dir: str | Path,
    start: date,
    days: int,
    orders_per_day: int = 1000,
    seed: int = 0,
    defects: Sequence[DefectSpec | str] = (),
    clean_dims_after_day_one: bool = False,
    clean: bool = False,
) -> GenerationLog:
    """Generate `days` daily partitions from `start` into out_dir; return (and write) the log.

    Each generated partition folder is replaced; `clean=True` also removes every other
    `ingest_date=*` folder of out_dir.
    """
    if days < 1 or orders_per_day < 1:
        raise ValueError("days and orders_per_day must be >= 1")
    specs = [parse_defect(s) if isinstance(s, str) else s for s in defects]
    end = start + timedelta(days=days - 1)
    for s in specs:
        if s.day is not None and not (start <= s.day <= end):
            raise DefectError(f"{s}: day outside {start}..{end}")
        _spec_tables(s)
    _check_constants()
    cfg = Config(start, days, orders_per_day, seed, specs, clean_dims_after_day_one)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if clean:
        for p in out.glob(PARTITION_PREFIX + "*"):
            if p.is_dir():
                shutil.rmtree(p)
    log = GenerationLog(params={
        "start": start.isoformat(), "days": days, "orders_per_day": orders_per_day, "seed": seed,
        "clean_dims_after_day_one": clean_dims_after_day_one, "defects": [str(s) for s in specs],
    })
    state = State()
    for i in range(days):
        d = start + timedelta(days=i)
        log.days.append(_Day(cfg, state, i, d).run(out))
    (out / LOG_FILE).write_text(json.dumps(log.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return log


def _check_constants() -> None:
    cc, cur = C.country_codes(), C.currency_codes()
    assert set(COUNTRIES) <= cc and set(CURRENCIES) <= cur
    assert not set(BAD_COUNTRIES) & cc and not {b.upper() for b in BAD_CURRENCIES} & cur
    enums = {"status": C.ORDER_STATUSES + C.PAYMENT_STATUSES, "method": C.PAYMENT_METHODS,
             "event_type": C.EVENT_TYPES, "platform": C.PLATFORMS}
    for k, bad in BAD_ENUMS.items():
        assert not set(bad) & set(enums[k]), k
