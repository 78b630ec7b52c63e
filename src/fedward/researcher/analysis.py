"""An experiment's results for analysis: its history as a pandas ``DataFrame``, and the
global parameters of any past round, read back from its checkpoints.

Rounds are counted as the progress line, the plots and the checkpoints count them:
round 1 is the first (``history[0]``, checkpoint ``round-0001``), round 0 the initial
model. pandas comes with the ``researcher`` extra and is imported only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedward.core.params import Params
from fedward.errors import NotFound, ValidationError
from fedward.protocol.params_wire import load_params
from fedward.researcher.history import RoundRecord, metric_names

if TYPE_CHECKING:
    import pandas as pd

#: Columns of the per-node frame before the metrics (one row per node and round).
NODE_COLUMNS = ("round", "node_id", "status", "sample_count")
#: Columns after the metrics.
DETAIL_COLUMNS = ("load_s", "train_s", "save_s", "duration_s", "threads", "job_id", "error")


def history_frame(history: Sequence[RoundRecord], per_node: bool = True) -> pd.DataFrame:
    """One row per node and round (``per_node``), with its status, sample count, every
    metric as a column, timings, threads, job id and error; else one row per round with
    the sample-weighted mean of each metric over the nodes that succeeded."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ValidationError(
            "a DataFrame of the history needs pandas", hint="pip install 'fedward[researcher]'"
        ) from exc
    metrics = metric_names(history)
    if not per_node:
        rows: list[dict[str, Any]] = [
            {
                "round": record.round_index + 1,
                "succeeded": len(record.succeeded),
                "dropped": len(record.dropped),
                **record.metrics,
                "duration_s": record.duration_s,
            }
            for record in history
        ]
        columns = ["round", "succeeded", "dropped", *metrics, "duration_s"]
        return pd.DataFrame(rows, columns=columns)
    rows = []
    for record in history:
        for node_id, result in sorted(record.nodes.items()):
            fields = asdict(result)
            rows.append(
                {
                    "round": record.round_index + 1,
                    "node_id": node_id,
                    "status": result.status,
                    "sample_count": result.sample_count,
                    **result.metrics,
                    **result.timings,
                    **{name: fields[name] for name in ("duration_s", "threads", "job_id", "error")},
                }
            )
    return pd.DataFrame(rows, columns=[*NODE_COLUMNS, *metrics, *DETAIL_COLUMNS])


def params_after_round(checkpoints: Path | None, round_number: int, rounds_done: int) -> Params:
    """The global parameters after round ``round_number`` (1 = the first), from the
    experiment's checkpoint of that round."""
    if not 1 <= round_number <= rounds_done:
        raise ValidationError(
            f"round {round_number} is not a round of this experiment",
            hint=f"rounds 0 (the initial model) to {rounds_done} have parameters",
        )
    if checkpoints is None:
        raise NotFound(
            f"no checkpoint to read round {round_number}'s parameters from",
            hint="past rounds are kept only with checkpoints=True and a state folder",
        )
    path = checkpoints / f"round-{round_number:04d}" / "params.safetensors"
    if not path.is_file():
        raise NotFound(
            f"the checkpoint of round {round_number} is gone",
            hint="keep_checkpoints keeps only the last ones",
        )
    return load_params(path)
