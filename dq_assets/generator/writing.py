"""Writing a frame as a CSV file (shuffled columns, header variants, BOM, CRLF, whitespace,
quoting) with its manifest entry, and manifest_drift."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dq_assets.contract import tables as C
from dq_assets.generator.constants import FILE_BOM_P, FILE_CRLF_P, FILE_HEADER_P, FILE_SHUFFLE_P, WS_PADS
from dq_assets.generator.defects import DefectError, _Task
from dq_assets.generator.frame import Frame
from dq_assets.generator.values import _arr, decimal_sum, fmt_sum


class Writing:
    """Files and manifest. Mixed into `_Day` (day.py), whose attributes it uses: cfg, state, i, d, ds, de, tag,
    rng_base, rng_def, injected, frames."""

    def write_frame(self, f: Frame, path: Path, write: bool, mess_log: dict) -> dict[str, Any]:
        tab = C.table(f.name)
        r = self.mess_rng(f.name, 20)
        order = list(f.order)
        if r.random() < FILE_SHUFFLE_P:
            order = [order[i] for i in r.permutation(len(order))]
            mess_log["shuffled_columns"].append(f.name)
        header = list(order)
        if r.random() < FILE_HEADER_P:
            styles = r.integers(0, 5, len(header))
            header = [[h, h.upper(), h.title(), f" {h}", f"{h.capitalize()} "][s] for h, s in zip(header, styles)]
            mess_log["header_variants"].append(f.name)
        bom = r.random() < FILE_BOM_P
        eol = "\r\n" if r.random() < FILE_CRLF_P else "\n"
        if bom:
            mess_log["bom"].append(f.name)
        if eol == "\r\n":
            mess_log["crlf"].append(f.name)
        h = hashlib.sha256()
        fh = open(path, "wb") if write else None
        try:
            def emit(b) -> None:
                h.update(b)
                if fh:
                    fh.write(b)
            emit((b"\xef\xbb\xbf" if bom else b"") + (",".join(_quote(x) for x in header) + eol).encode("utf-8"))
            chunk = 1_000_000
            ws = {}
            if f.ws:
                if "pos" in f.meta:
                    inv = np.empty(f.next_uid, dtype=np.int64)
                    inv[f.meta["uid"]] = np.arange(f.n)
                for c, (uids, which) in f.ws.items():
                    pos = inv[uids] if "pos" in f.meta else uids
                    keep = ~(f.meta["used"][pos] | f.meta["protected"][pos])
                    o = np.argsort(pos[keep], kind="stable")
                    ws[c] = (pos[keep][o], which[keep][o])
            lefts, rights = _arr(p[0] for p in WS_PADS), _arr(p[1] for p in WS_PADS)
            for s in range(0, f.n, chunk):
                cols = []
                for c in order:
                    a = f.cols[c].slice(s, chunk)
                    if c in ws:
                        pos, which = ws[c]
                        lo, hi = np.searchsorted(pos, [s, s + len(a)])
                        if hi > lo:
                            rel, w = pos[lo:hi] - s, pa.array(which[lo:hi])
                            new = pc.binary_join_element_wise(pc.take(lefts, w), pc.take(a, pa.array(rel)),
                                                              pc.take(rights, w), "")
                            mask = np.zeros(len(a), dtype=bool)
                            mask[rel] = True
                            a = pc.replace_with_mask(a, pa.array(mask), new)
                    if c in f.may_quote:
                        need = pc.match_substring_regex(a, '[",\r\n]')
                        if pc.any(need).as_py():
                            q = pc.binary_join_element_wise(
                                pa.scalar('"'), pc.replace_substring(a, '"', '""'), pa.scalar('"'), "")
                            a = pc.if_else(need, q, a)
                    cols.append(a)
                line = pc.binary_join_element_wise(*cols, ",") if len(cols) > 1 else cols[0]
                line = pc.binary_join_element_wise(line, pa.scalar(""), eol)
                emit(_bytes_of(line))
        finally:
            if fh:
                fh.close()
        info: dict[str, Any] = {"rows": f.n, "sha256": h.hexdigest()}
        if tab.manifest_sum:
            col, fld = tab.manifest_sum
            info[fld] = fmt_sum(decimal_sum(f.cols[col])) if col in f.cols else "0.00"
        return info

    def manifest_drift(self, t: _Task, files: dict[str, dict[str, Any]]) -> None:
        tab = C.table(t.table)
        info = files.get(tab.file_name)
        entry = {"kind": "manifest_drift", "table": t.table, "file": tab.file_name, "count": 1, "spec": t.spec}
        if info is None:
            raise DefectError(f"{self.d} {t.spec}: {tab.file_name} is not in the manifest")
        if t.option == "rows":
            fld, actual = "rows", info["rows"]
            info["rows"] = actual + 1
        elif t.option == "sha256":
            fld, actual = "sha256", info["sha256"]
            info["sha256"] = hashlib.sha256(b"drift:" + actual.encode()).hexdigest()
        else:
            fld = tab.manifest_sum[1]
            actual = info[fld]
            info[fld] = fmt_sum(Decimal(actual) + Decimal("10.00"))
        entry.update(field=fld, manifest=info[fld], actual=actual)
        self.injected.append(entry)


def _quote(s: str) -> str:
    return '"' + s.replace('"', '""') + '"' if any(ch in s for ch in ',"\r\n') else s


def _bytes_of(a: pa.Array) -> memoryview:
    bufs = a.buffers()
    if len(a) == 0:
        return memoryview(b"")
    width = 8 if pa.types.is_large_string(a.type) else 4
    offs = np.frombuffer(bufs[1], dtype=np.int64 if width == 8 else np.int32, count=len(a) + 1, offset=a.offset * width)
    return memoryview(bufs[2])[int(offs[0]): int(offs[-1])]
