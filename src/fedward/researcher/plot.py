"""``plot_history``: a PNG of the metrics per round, per node and aggregated
(``history_figure`` draws it).

One panel per metric, losses first: a thick line for the sample-weighted mean over the
nodes, a thin one per node, rounds on integer ticks (1 = the first, as the progress line
counts). ``skip_first_round`` leaves round 1 out: its ``global_`` metrics measure the
untrained model and squash the scale of the rest. matplotlib is imported here only (the
``researcher`` extra), and drawn through its Agg canvas, so nothing touches pyplot's
global state or needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fedward.errors import ValidationError
from fedward.researcher.history import RoundRecord, aggregate_series, metric_names, node_series

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_history(
    history: Sequence[RoundRecord],
    path: Path | str,
    *,
    metrics: Sequence[str] | None = None,
    title: str = "",
    skip_first_round: bool = False,
) -> Path:
    figure = history_figure(
        history, metrics=metrics, title=title, skip_first_round=skip_first_round
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=100)
    return out


def history_figure(
    history: Sequence[RoundRecord],
    *,
    metrics: Sequence[str] | None = None,
    title: str = "",
    skip_first_round: bool = False,
) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise ValidationError(
            "plotting needs matplotlib", hint="pip install 'fedward[researcher]'"
        ) from exc
    if skip_first_round:
        history = [record for record in history if record.round_index > 0]
    names = list(metrics) if metrics is not None else losses_first(metric_names(history))
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
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if index == 0:
            axes.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def losses_first(names: Sequence[str]) -> list[str]:
    """Metric names with the losses (``train_loss``, ...) first, each group sorted."""
    return sorted(names, key=lambda name: ("loss" not in name, name))
