"""``latest.json`` -> the Markdown tables of ``latest.md`` (and of ``make bench``'s output)."""

from __future__ import annotations

from typing import Any

from benchmarks import large_model

#: Issue 13's per-cell targets for the median round overhead, in seconds.
OVERHEAD_TARGETS_S: dict[tuple[int, int], float] = {
    (1_000_000, 2): 0.05,
    (1_000_000, 10): 0.25,
    (25_000_000, 2): 1.2,
    (25_000_000, 10): 5.0,
    (100_000_000, 2): 4.5,
}
RAW_FLOOR_RATIO_TARGET = 3.0  # overhead <= 3x the raw physical floor, every cell
PEER_SPEEDUP_TARGET = 4.0  # >= 4x faster per round than the better peer
FEDAVG_GBPS_TARGET = 1.0
RSS_RATIO_TARGET = 3.0
PEERS = (("flower", "Flower"), ("fedbiomed", "Fed-BioMed"))


def _params(n: int) -> str:
    return f"{n / 1e6:g}M"


def _spread(stats: dict[str, float]) -> str:
    return f"{stats['median']:.3f} ({stats['min']:.3f}-{stats['max']:.3f})"


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _floor_s(cell: dict[str, Any], key: str) -> float | None:
    value = cell.get(key, {}).get("seconds", {}).get("median")
    return float(value) if value else None


def round_table(results: dict[str, Any]) -> str:
    """fedward's overhead next to its two floors: through the upload server (HTTP), and
    the raw physical floor (loopback TCP between processes + one SHA-256 per transfer)."""
    lines = [
        "| model | nodes | fedward overhead s, median (min-max) | target "
        "| HTTP floor s | overhead / HTTP floor | raw floor s | overhead / raw floor "
        f"| overhead <= {RAW_FLOOR_RATIO_TARGET:g}x raw floor | rounds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in results.get("fedward", {}).get("cells", []):
        key = (cell["num_params"], cell["nodes"])
        if "error" in cell:
            lines.append(f"| {_params(key[0])} | {key[1]} | failed: {cell['error']} ||||||||")
            continue
        overhead = cell["overhead_s"]["median"]
        target = OVERHEAD_TARGETS_S.get(key)
        target_text = f"<= {target:g} s, {_mark(overhead <= target)}" if target else "-"
        http, raw = _floor_s(cell, "floor"), _floor_s(cell, "raw_floor")
        http_text = f"{http:.3f} | {overhead / http:.2f}x" if http else "- | -"
        raw_text = (
            f"{raw:.3f} | {overhead / raw:.2f}x | {_mark(overhead / raw <= RAW_FLOOR_RATIO_TARGET)}"
            if raw
            else "- | - | not measured"
        )
        lines.append(
            f"| {_params(key[0])} | {key[1]} | {_spread(cell['overhead_s'])} | {target_text} "
            f"| {http_text} | {raw_text} | {len(cell['rounds'])} |"
        )
    return "\n".join(lines)


def _peer_text(peer: dict[str, Any] | None) -> tuple[str, float | None, str]:
    """(the cell's text, its median overhead or None, its number of timed rounds)."""
    if peer is None or "error" in peer or "skipped" in peer:
        why = (peer or {}).get("error") or (peer or {}).get("skipped") or "not run"
        return f"not measured: {why}", None, "-"
    return _spread(peer["overhead_s"]), peer["overhead_s"]["median"], str(len(peer["rounds"]))


def _peer_cell(section: dict[str, Any], key: tuple[int, int]) -> dict[str, Any] | None:
    for cell in section.get("cells", []):
        if (cell["num_params"], cell["nodes"]) == key:
            return dict(cell)
    if section.get("error"):  # the peer as a whole failed (install, start): say why
        return {"error": section["error"]}
    return None


def peers_table(results: dict[str, Any]) -> str:
    """fedward's overhead next to Flower's and Fed-BioMed's, measured in the same run."""
    header = "| model | nodes | fedward overhead s |"
    rule = "|---|---:|---:|"
    for _name, title in PEERS:
        header += f" {title} overhead s, median (min-max) | fedward / {title} |"
        rule += "---:|---:|"
    header += f" >= {PEER_SPEEDUP_TARGET:g}x faster than the better peer | rounds fedward"
    header += "".join(f" / {title}" for _name, title in PEERS) + " |"
    rule += "---:|---:|"
    lines = [header, rule]
    fedward = {
        (c["num_params"], c["nodes"]): c
        for c in results.get("fedward", {}).get("cells", [])
        if "error" not in c
    }
    keys = list(fedward)  # then the cells only a peer ran (a run of --only fedbiomed)
    for name, _title in PEERS:
        for c in results.get(name, {}).get("cells", []):
            if (c["num_params"], c["nodes"]) not in keys:
                keys.append((c["num_params"], c["nodes"]))
    for key in keys:
        cell = fedward.get(key)
        overhead = cell["overhead_s"]["median"] if cell else None
        row = f"| {_params(key[0])} | {key[1]} | {f'{overhead:.3f}' if overhead else '-'} |"
        medians, counts = [], []
        for name, _title in PEERS:
            text, median, rounds = _peer_text(_peer_cell(results.get(name, {}), key))
            ratio = f"{overhead / median:.3f}" if median and overhead else "-"
            row += f" {text} | {ratio} |"
            if median:
                medians.append(median)
            counts.append(rounds)
        if medians and overhead:
            speedup = min(medians) / overhead
            row += f" {speedup:.1f}x, {_mark(speedup >= PEER_SPEEDUP_TARGET)} |"
        else:
            row += " - |"
        fedward_rounds = str(len(cell["rounds"])) if cell else "-"
        lines.append(row + f" {fedward_rounds} / {' / '.join(counts)} |")
    return "\n".join(lines)


def breakdown_table(results: dict[str, Any]) -> str:
    """Medians of what the researcher and the slowest node's worker measured per round."""
    lines = [
        "| model | nodes | round wall s | slowest node compute s | node load s | node save s "
        "| researcher upload s | researcher downloads s | checkpoint s | first round s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in results.get("fedward", {}).get("cells", []):
        if "error" in cell:
            continue
        rounds = cell["rounds"]

        def median(key: str, rounds: list[dict[str, float]] = rounds) -> float:
            values = sorted(r[key] for r in rounds)
            return values[len(values) // 2]

        lines.append(
            f"| {_params(cell['num_params'])} | {cell['nodes']} | {median('wall_s'):.3f} "
            f"| {median('compute_s'):.3f} | {median('node_load_s'):.3f} "
            f"| {median('node_save_s'):.3f} | {median('researcher_upload_s'):.3f} "
            f"| {median('researcher_download_s'):.3f} | {median('checkpoint_s'):.3f} "
            f"| {cell['warmup_wall_s']:.3f} |"
        )
    return "\n".join(lines)


def aggregation_table(aggregation: dict[str, Any]) -> str:
    if "cases" not in aggregation:
        return f"not measured: {aggregation.get('error', 'no result')}"
    cases = aggregation["cases"]
    lines = [
        f"{cases[0]['params'] / 1e6:g}M float32 parameters in {cases[0]['tensors']} tensors; "
        "each N in a fresh process (benchmarks.aggregation).",
        "",
        "| updates | model MB | FedAvg fold GB/s | target | researcher peak RSS MB "
        "| RSS / model | target |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in aggregation["cases"]:
        gbps, ratio = case["fold_gb_per_s"], case["ratio"]
        lines.append(
            f"| {case['updates']} | {case['model_bytes'] / 1e6:.0f} | {gbps:.2f} "
            f"| {_mark(gbps >= FEDAVG_GBPS_TARGET)} | {case['peak_rss_bytes'] / 1e6:.0f} "
            f"| {ratio:.2f}x | {_mark(ratio <= RSS_RATIO_TARGET)} |"
        )
    return "\n".join(lines)


def scale_text(scale: dict[str, Any]) -> str:
    if "round_wall_s" not in scale:
        return f"not measured: {scale.get('error', 'no result')}"
    cpu = scale["cpu_s"]
    share = scale["cpu_percent_of_one_core"]
    peak = scale["peak_cpu_percent"]
    lines = [
        f"{scale['nodes']} nodes, {_params(scale['num_params'])} parameters, "
        f"broker {scale['broker']}: all online in {scale['nodes_online_s']:.1f} s; "
        f"one round {scale['round_wall_s']:.3f} s wall ({scale['replies']} replies), "
        f"machine {scale['machine_busy_percent']:.0f}% busy during it.",
        "",
        "| process | CPU s in the round | % of one core | peak % (100 ms samples) |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in cpu.items():
        peak_text = f"{peak[name]:.0f}" if name in peak else "-"
        lines.append(f"| {name} | {seconds:.3f} | {share[name]:.0f} | {peak_text} |")
    return "\n".join(lines)


def tunnel_text(tunnel: dict[str, Any]) -> str:
    lab = tunnel.get("lab", {})
    loop = tunnel.get("loopback", {})
    size = tunnel.get("size_mb", 100)
    lines = [
        f"| path ({size} MB blob) | upload s | download s | upload MB/s | download MB/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, data in (("loopback", loop), ("WireGuard lab (wireguard-go)", lab)):
        if data.get("measured") is False or "upload_s" not in data:
            lines.append(f"| {name} | not measured: {data.get('reason', 'no result')} ||||")
            continue
        lines.append(
            f"| {name} | {_spread(data['upload_s'])} | {_spread(data['download_s'])} "
            f"| {data['upload_mb_per_s']:.0f} | {data['download_mb_per_s']:.0f} |"
        )
    return "\n".join(lines)


def secagg_table(secagg: dict[str, Any]) -> str:
    if not secagg.get("cells"):
        return f"not measured: {secagg.get('error', 'no result')}"
    lines = [
        "| parameters x nodes | plain round s | SecAgg round s | ratio | trained+keys s "
        "| shares s | masked s | unmasked s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in secagg["cells"]:
        if "error" in cell:
            lines.append(f"| ? x {cell['nodes']} | error: {cell['error']} | | | | | | |")
            continue
        steps = cell.get("secure_steps_s", {})
        at = [steps.get(k, float("nan")) for k in ("keys", "shares", "masked", "ok")]
        lines.append(
            f"| {_params(cell['num_params'])} x {cell['nodes']} "
            f"| {cell['plain_wall_s']['median']:.3f} | {cell['secure_wall_s']['median']:.3f} "
            f"| {cell['ratio']:.2f} | {at[0]:.3f} | {at[1] - at[0]:.3f} | {at[2] - at[1]:.3f} "
            f"| {at[3] - at[2]:.3f} |"
        )
    return "\n".join(lines)


def _title(results: dict[str, Any]) -> str:
    partial = results.get("partial")
    if partial:  # --only / --cells: say what was run, so it is never taken for a full run
        return (
            f"# fedward benchmark: partial run (sections {', '.join(partial['sections'])}; "
            f"cells {', '.join(partial['cells'])})"
        )
    return "# fedward benchmark: latest results"


def markdown(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    flower_version, fedbiomed_version = (
        results[name].get("version", "not installed") if name in results else "not run"
        for name in ("flower", "fedbiomed")
    )
    parts = [
        _title(results),
        "",
        f"Run {results.get('started', '?')} on {machine.get('cpus', '?')} CPUs "
        f"({machine.get('cpu_model', '?')}), {machine.get('memory_gb', 0):.0f} GB, "
        f"Python {machine.get('python', '?')}, fedward {machine.get('commit', '?')}, "
        f"Flower {flower_version}, Fed-BioMed {fedbiomed_version}; "
        f"load average before: {machine.get('load_before', '?')}; "
        f"whole run {results.get('duration_s', 0) / 60:.1f} min.",
        "How to read it and what the numbers mean: docs/benchmarks.md.",
        "",
        "## Round overhead (round wall time - slowest node's local compute)",
        "",
        round_table(results),
        "",
        "The HTTP floor moves the round's bytes through fedward's upload server with "
        "`HttpBlobStore` (benchmarks/floor.py); the raw floor moves them over loopback TCP "
        "between this process and one process per node, with one SHA-256 pass per "
        "transfer (benchmarks/raw_floor.py).",
        "",
        "## Against Flower and Fed-BioMed (same workload, same run, loopback)",
        "",
        peers_table(results),
        "",
        "Where a fedward round's time goes (medians; researcher uploads/downloads are its "
        "HttpBlobStore calls, node load/save are the job worker's):",
        "",
        breakdown_table(results),
        "",
        "## Aggregation (researcher, FedAvg, streamed from update files)",
        "",
        aggregation_table(results.get("aggregation", {})),
        "",
        "## Secure aggregation (SecAgg round against a plain FedAvg round, medians)",
        "",
        secagg_table(results.get("secagg", {})),
        "",
        "## Scale",
        "",
        scale_text(results.get("scale", {})),
        "",
        "## Through the tunnel",
        "",
        tunnel_text(results.get("tunnel", {})),
        "",
        "## Large model (1 GB): peak memory",
        "",
        large_model.table(results["large"]) if "large" in results else "not run",
        "",
    ]
    return "\n".join(parts)
