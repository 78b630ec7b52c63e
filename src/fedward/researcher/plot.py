"""``plot_history``: a PNG of the metrics per round, per node and aggregated.

One panel per metric: a thick line for the sample-weighted mean over the nodes, a thin
one per node. matplotlib is imported here only (the ``[notebooks]`` extra), and drawn
through its Agg canvas, so nothing touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from fedward.errors import ValidationError
from fedward.researcher.history import RoundRecord, aggregate_series, metric_names, node_series


def plot_history(
    history: Sequence[RoundRecord],
    path: Path | str,
    *,
    metrics: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ValidationError(
            "plotting needs matplotlib", hint="pip install 'fedward[notebooks]'"
        ) from exc
    names = list(metrics) if metrics is not None else metric_names(history)
    if not history or not names:
        raise ValidationError("nothing to plot yet: no round reported a metric")
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(4.5 * columns, 3.4 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        for node_id, points in node_series(history, name).items():
            axes.plot(
                [r + 1 for r, _ in points],
                [v for _, v in points],
                marker="o",
                markersize=3,
                linewidth=1,
                alpha=0.7,
                label=node_id,
            )
        mean = aggregate_series(history, name)
        axes.plot(
            [r + 1 for r, _ in mean],
            [v for _, v in mean],
            color="black",
            linewidth=2.5,
            label="all nodes",
        )
        axes.set_title(name)
        axes.set_xlabel("round")
        axes.grid(alpha=0.3)
        if index == 0:
            axes.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=100)
    return out
