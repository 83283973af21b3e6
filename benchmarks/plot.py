"""The plot of the benchmark README: wall time of one day end to end against orders per day,
for dq_assets, dbt (`dbt build` of benchmarks/dbt_project on the same landing files) and
Dagster's no-op floor (the same graph doing no data work)."""

from __future__ import annotations

from pathlib import Path


def plot_scaling(points: list[dict], floor_s: float | None, path: Path) -> Path:
    """`points`: [{"orders", "dq_assets_s", "dbt_s"}, ...]; a missing time leaves a gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    orders = [p["orders"] for p in points]
    for key, label, marker in (("dq_assets_s", "dq_assets (CLI, end to end)", "o"),
                               ("dbt_s", "dbt build (dbt-duckdb)", "s")):
        xs = [p["orders"] for p in points if p.get(key) is not None]
        ys = [p[key] for p in points if p.get(key) is not None]
        if xs:
            ax.plot(xs, ys, marker=marker, label=label)
            for x, y in zip(xs, ys):
                ax.annotate(f"{y:.0f} s", (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8)
    if floor_s is not None and orders:
        ax.plot([min(orders), max(orders)], [floor_s, floor_s], linestyle="--", color="grey",
                label=f"Dagster's no-op floor ({floor_s:.1f} s)")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("orders per day (about 2.5 items and 10 events each)")
    ax.set_ylabel("wall time, s (2 cores)")
    ax.set_title("One day end to end")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
