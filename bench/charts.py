"""One small PNG chart per benchmark, next to its Markdown table in bench/results/.

Grouped bars: one group per label (a scenario, a size, a broker), one bar per series (seed vs streamer,
pass-through vs streamer, ...), an optional dashed target line. Small on purpose (committed files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def bar_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    ylabel: str,
    *,
    target: float | None = None,
    target_label: str = "target",
    log_scale: bool = False,
) -> Path:
    """Write ``bench/results/<name>.png``; each series has one value per label."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    for key, values in series.items():
        if len(values) != len(labels):
            raise ValueError(f"series {key!r} has {len(values)} values for {len(labels)} labels")
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=80)
    width = 0.8 / max(len(series), 1)
    for i, (key, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        bars = ax.bar(xs, values, width, label=key)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", linewidth=1, label=target_label)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log_scale:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.png"
    fig.savefig(out)
    plt.close(fig)
    return out
