"""What a run carries from day to day: its `Config` and the `State` (dimension pools, the last
days' orders that may be re-sent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

from dq_assets.generator.defects import DefectSpec
from dq_assets.generator.values import _ndigits


@dataclass
class Pool:
    """Dimension rows ever sent (all versions' latest attributes), as numpy columns."""

    cols: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(next(iter(self.cols.values()))) if self.cols else 0

    def extend(self, new: dict[str, np.ndarray]) -> None:
        if not self.cols:
            self.cols = {k: np.asarray(v) for k, v in new.items()}
        else:
            self.cols = {k: np.concatenate([self.cols[k], np.asarray(new[k], dtype=self.cols[k].dtype)])
                         for k in self.cols}


@dataclass
class Config:
    start: date
    days: int
    orders_per_day: int
    seed: int
    defects: list[DefectSpec]
    clean_dims_after_day_one: bool = False

    @property
    def n_customers0(self) -> int:
        return max(50, self.orders_per_day)

    @property
    def n_products0(self) -> int:
        return int(np.clip(30 + self.orders_per_day // 100, 30, 200))

    @property
    def order_width(self) -> int:
        return max(6, _ndigits(int(self.orders_per_day * 1.2)))

    @property
    def payment_width(self) -> int:
        return max(6, _ndigits(int(self.orders_per_day * 1.5)))

    @property
    def event_width(self) -> int:
        return max(8, _ndigits(int(self.orders_per_day * 13)))

    @property
    def session_width(self) -> int:
        return max(7, _ndigits(int(self.orders_per_day * 3)))


@dataclass
class State:
    customers: Pool = field(default_factory=Pool)
    products: Pool = field(default_factory=Pool)
    recent_orders: list[dict[str, np.ndarray]] = field(default_factory=list)  # last days' orders
