"""Vectorised value helpers: seeded random streams, ids, money, integers and timestamps as
Arrow string arrays built from numpy (no Python loop per row), and exact decimal totals."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.generator.constants import _TS_ZONE, DAY, TS_STYLES, TZ_OFFSETS_MIN, UTC


def _rng(seed: int, d: date, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, d.toordinal(), *stream]))


def day_start(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def _weights(values: Sequence[str], w: dict[str, float]) -> np.ndarray:
    p = np.array([w.get(v, 0.02) for v in values], dtype=float)
    return p / p.sum()


def _ndigits(x: int) -> int:
    return len(str(max(int(x), 1)))


def _arr(values: Iterable[str]) -> pa.Array:
    return pa.array(list(values), type=pa.string())


def _from_matrix(m: np.ndarray, lengths: np.ndarray | None = None) -> pa.Array:
    """uint8 matrix (n, w) of characters, row i using its first lengths[i] -> string array."""
    n, w = m.shape
    if lengths is None:
        data = np.ascontiguousarray(m).reshape(-1)
        offsets = np.arange(0, (n + 1) * w, w, dtype=np.int64)
    else:
        data = m[np.arange(w)[None, :] < lengths[:, None]]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31 - 1:
        return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])


def _put_digits(m: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    small = len(values) and int(values.max()) < 2**31 and int(values.min()) >= 0
    v = values.astype(np.int32 if small else np.int64, copy=True)
    for k in range(width - 1, -1, -1):
        m[:, col + k] = 48 + v % 10
        v //= 10


def fixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """prefix + zero-padded numbers, e.g. fixed_ids('C', [1], 7) -> 'C0000001'."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(numbers):
        width = max(width, _ndigits(numbers.max()))
    p = prefix.encode()
    m = np.empty((len(numbers), len(p) + width), dtype=np.uint8)
    m[:, : len(p)] = np.frombuffer(p, dtype=np.uint8)
    _put_digits(m, len(p), numbers, width)
    return _from_matrix(m)


_FRAC = None


def money(cents: np.ndarray) -> pa.Array:
    """Non-negative integer cents -> '12.34'."""
    global _FRAC
    if _FRAC is None:
        _FRAC = _arr(f"{i:02d}" for i in range(100))
    cents = np.asarray(cents, dtype=np.int64)
    neg = cents < 0
    a = np.abs(cents)
    s = pc.binary_join_element_wise(pc.cast(pa.array(a // 100), pa.string()), pc.take(_FRAC, pa.array(a % 100)), ".")
    if neg.any():
        s = pc.if_else(pa.array(neg), pc.binary_join_element_wise(pa.scalar("-"), s, ""), s)
    return s


def money_str(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    a = abs(int(cents))
    return f"{sign}{a // 100}.{a % 100:02d}"


def integers(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def timestamps(sec: np.ndarray, style: np.ndarray | int, rng: np.random.Generator | None = None) -> pa.Array:
    """UTC epoch seconds -> strings in the accepted spellings of TS_STYLES (style per row)."""
    sec = np.asarray(sec, dtype=np.int64)
    n = len(sec)
    style = np.full(n, style, dtype=np.int64) if np.isscalar(style) else np.asarray(style, dtype=np.int64)
    if n == 0:
        return pa.array([], type=pa.string())
    rng = rng or np.random.default_rng(0)
    chunk = 2_000_000
    if n > chunk:  # bounded temporary memory
        return pa.concat_arrays([timestamps(sec[i:i + chunk], style[i:i + chunk], rng) for i in range(0, n, chunk)])
    kinds = _TS_ZONE[style]
    use_off = kinds == 2
    off = np.zeros(n, dtype=np.int64)
    if use_off.any():
        off[use_off] = np.array(TZ_OFFSETS_MIN)[rng.integers(0, len(TZ_OFFSETS_MIN), use_off.sum())]
    local = sec + off * 60
    days = local // DAY
    sod = local - days * DAY
    d0, d1 = int(days.min()), int(days.max())
    epoch = date(1970, 1, 1).toordinal()
    table = np.frombuffer("".join(date.fromordinal(epoch + d).isoformat() for d in range(d0, d1 + 1)).encode(),
                        dtype=np.uint8).reshape(-1, 10)
    w = 29
    m = np.zeros((n, w), dtype=np.uint8)
    m[:, :10] = table[days - d0]
    seps = np.array([ord(s[0]) if s[0] else 84 for s in TS_STYLES], dtype=np.uint8)
    m[:, 10] = seps[style]
    hh, mm, ss = sod // 3600, sod // 60 % 60, sod % 60
    for col, v in ((11, hh), (14, mm), (17, ss)):
        m[:, col] = 48 + v // 10
        m[:, col + 1] = 48 + v % 10
    m[:, 13] = m[:, 16] = 58
    lengths = np.full(n, 19, dtype=np.int64)
    frac = np.array([s[1] for s in TS_STYLES])[style]
    for digits in (3, 6):
        idx = np.flatnonzero(frac == digits)
        if len(idx):
            sub = np.zeros((len(idx), digits + 1), dtype=np.uint8)
            sub[:, 0] = 46
            _put_digits(sub, 1, rng.integers(0, 10**digits, len(idx)), digits)
            m[idx, 19 : 20 + digits] = sub
            lengths[idx] += digits + 1
    zi = np.flatnonzero(kinds == 1)
    m[zi, lengths[zi]] = 90
    lengths[zi] += 1
    oi = np.flatnonzero(use_off)
    if len(oi):
        o = off[oi]
        a = np.abs(o)
        sub = np.empty((len(oi), 6), dtype=np.uint8)
        sub[:, 0] = np.where(o < 0, 45, 43)
        sub[:, 1], sub[:, 2] = 48 + a // 600, 48 + a // 60 % 10
        sub[:, 3] = 58
        sub[:, 4], sub[:, 5] = 48 + a % 60 // 10, 48 + a % 10
        for j in range(6):
            m[oi, lengths[oi] + j] = sub[:, j]
        lengths[oi] += 6
    ei = np.flatnonzero(kinds == 3)
    if len(ei):
        ew = _ndigits(int(sec[ei].max()))
        sub = np.zeros((len(ei), ew), dtype=np.uint8)
        _put_digits(sub, 0, sec[ei], ew)
        m[ei, :ew] = sub
        m[ei, ew:] = 0
        lengths[ei] = ew
    return _from_matrix(m, lengths)


def ts_str(sec: int, style: int = 0) -> str:
    return timestamps(np.array([sec]), style)[0].as_py()


def _trim_list(a: pa.Array) -> list[str]:
    return pc.utf8_trim(a, characters=" ").to_pylist()


_NUM_RE = re.compile(r"^([+-]?)(\d+)(?:\.(\d+))?$")


def decimal_sum(values: pa.Array) -> Decimal:
    """Exact sum of decimal strings as written; blank or unparseable values count as 0."""
    total = Decimal(0)
    if len(values) == 0:
        return total
    vc = pc.value_counts(pc.utf8_trim(values, characters=" \t"))
    for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
        if v and _NUM_RE.match(v):
            total += Decimal(v) * n
    return total


def fmt_sum(d: Decimal) -> str:
    return str(d.quantize(Decimal("0.01")))


def _short_money(c: int) -> str:
    s = money_str(c)
    if s.endswith(".00"):
        return s[:-3]
    if s.endswith("0"):
        return s[:-1]
    return s
