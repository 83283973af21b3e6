"""`GenerationLog`: what was injected, per day (`_generator_log.json` at the landing root)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from dq_assets.generator.constants import LOG_FILE


@dataclass
class GenerationLog:
    params: dict[str, Any]
    days: list[dict[str, Any]] = field(default_factory=list)

    def day(self, d: date | str) -> dict[str, Any]:
        key = d if isinstance(d, str) else d.isoformat()
        for entry in self.days:
            if entry["ingest_date"] == key:
                return entry
        raise KeyError(key)

    def injections(self, d: date | str, kind: str | None = None, table: str | None = None) -> list[dict]:
        return [i for i in self.day(d)["injected"]
                if (kind is None or i["kind"] == kind) and (table is None or i["table"] == table)]

    def to_dict(self) -> dict[str, Any]:
        return {"generator": "dq_assets.generator", "format_version": 1, "params": self.params, "days": self.days}

    @classmethod
    def load(cls, path: str | Path) -> "GenerationLog":
        p = Path(path)
        if p.is_dir():
            p = p / LOG_FILE
        data = json.loads(p.read_text(encoding="utf-8"))
        return cls(params=data["params"], days=data["days"])
