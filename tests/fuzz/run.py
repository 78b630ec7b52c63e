"""``make fuzz``: every target of ``targets.py`` under atheris, then a report.

    python -m tests.fuzz.run [--runs N] [--max-len BYTES] [TARGET ...]

Each target runs in its own process (atheris owns the process it fuzzes) for ``--runs``
inputs, starting from the seeds of ``seeds.py`` and the saved crashes of
``regressions/``, with fedward's modules instrumented for coverage. libFuzzer stops at
the first crash; the crashing input is copied to ``regressions/<target>/``, where the
regression test replays it, so it must be fixed before the next run can count 0.

Results go to ``benchmarks/results/fuzz.md``: inputs run, crashes, coverage (libFuzzer's
edge and feature counts over instrumented fedward code) and speed per target.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REGRESSIONS = HERE / "regressions"
RESULTS = REPO / "benchmarks" / "results" / "fuzz.md"
DEFAULT_RUNS = 100_000
DEFAULT_MAX_LEN = 4096
# The modules whose coverage guides the fuzzer. Not numpy or the standard library:
# instrumenting them slows every input and rewards paths that are not ours.
INSTRUMENTED = (
    "fedward.protocol.codec",
    "fedward.broker.packets",
    "fedward.node.jobs.wire",
    "fedward.protocol.safetensors_header",
    "fedward.protocol.params_wire",
    "fedward.protocol.update_wire",
    "fedward.core.update_codec",
    "fedward.researcher.update_codecs",
    "fedward.vpn.envfile",
    "fedward.config.loader",
    "fedward.config.model",
    "fedward.uploads.app",
    "fedward.uploads.http_wire",
    "fedward.uploads.http_connection",
    "fedward.uploads.upload_streams",
    "fedward.uploads.blob_space",
    "fedward.uploads.tokens",
    "fedward.core.plan_digest",
    "fedward.learning.datasets.csv_table",
    "fedward.node.services.datasets",
    "fedward.learning.datasets.mnist",
    "fedward.learning.datasets.compressed_files",
    "fedward.learning.datasets.nifti",
)


@dataclass
class Outcome:
    target: str
    runs: int
    crashes: int
    edges: int
    features: int
    corpus: int
    seconds: float
    crash_files: list[str]

    @property
    def per_second(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0


def fuzz_in_this_process(target: str, libfuzzer_args: list[str]) -> None:
    """The child: instrument fedward, then hand the target to atheris (never returns)."""
    import importlib
    import logging

    import atheris

    logging.getLogger("nibabel").setLevel(logging.CRITICAL)  # it logs every bad header
    with atheris.instrument_imports(include=["fedward"]):
        for module in INSTRUMENTED:
            importlib.import_module(module)
    from tests.fuzz.targets import TARGETS

    atheris.Setup([sys.argv[0], *libfuzzer_args], TARGETS[target])
    atheris.Fuzz()


def run_target(target: str, runs: int, max_len: int, workdir: Path) -> Outcome:
    from tests.fuzz.seeds import seeds

    corpus = workdir / target / "corpus"
    artifacts = workdir / target / "artifacts"
    corpus.mkdir(parents=True)
    artifacts.mkdir()
    for data in seeds(target):
        (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)
    saved = REGRESSIONS / target
    if saved.is_dir():
        for path in saved.iterdir():
            shutil.copy(path, corpus / path.name)
    args = [
        f"-runs={runs}",
        f"-max_len={max_len}",
        "-timeout=20",
        "-rss_limit_mb=3072",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", "--child", target, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    seconds = time.monotonic() - started
    log = process.stdout + process.stderr
    (workdir / target / "libfuzzer.log").write_text(log)
    crash_files = []
    for artifact in sorted(artifacts.iterdir()):
        saved.mkdir(parents=True, exist_ok=True)
        name = f"{artifact.name.split('-')[0]}-{hashlib.sha1(artifact.read_bytes()).hexdigest()}"
        shutil.copy(artifact, saved / name)
        crash_files.append(str((saved / name).relative_to(REPO)))
    executed = _stat(log, "number_of_executed_units")
    if process.returncode != 0 and not crash_files:
        crash_files.append(f"(exit status {process.returncode}; see the log)")
        print(log[-4000:], file=sys.stderr)
    return Outcome(
        target=target,
        runs=executed,
        crashes=len(crash_files),
        edges=_last(log, r"cov: (\d+)"),
        features=_last(log, r"ft: (\d+)"),
        corpus=_last(log, r"corp: (\d+)"),
        seconds=seconds,
        crash_files=crash_files,
    )


def _stat(log: str, name: str) -> int:
    found = re.findall(rf"stat::{name}:\s+(\d+)", log)
    return int(found[-1]) if found else 0


def _last(log: str, pattern: str) -> int:
    found = re.findall(pattern, log)
    return int(found[-1]) if found else 0


def write_report(outcomes: list[Outcome], runs: int, max_len: int) -> str:
    from importlib.metadata import version

    lines = [
        "# Fuzzing (atheris, coverage-guided)",
        "",
        f"`make fuzz`: {runs} inputs per target, inputs up to {max_len} bytes, "
        f"atheris {version('atheris')}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs. Coverage: libFuzzer's edges (cov) and features (ft) in "
        "the instrumented fedward modules; corpus: inputs kept for new coverage.",
        "",
        "| target | inputs run | crashes | cov (edges) | ft | corpus | inputs/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.target} | {o.runs} | {o.crashes} | {o.edges} | {o.features} | {o.corpus} "
            f"| {o.per_second:.0f} |"
        )
    crashed = [o for o in outcomes if o.crash_files]
    lines += ["", f"Total crashes: {sum(o.crashes for o in outcomes)}."]
    for o in crashed:
        lines += [f"- {o.target}: " + ", ".join(o.crash_files)]
    lines += [
        "",
        "Crashes found while the targets were written (each now a regression input under "
        "`tests/fuzz/regressions/`, replayed by `tests/property/test_fuzz_regressions.py`) "
        "are listed in that test's docstring.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        fuzz_in_this_process(sys.argv[2], sys.argv[3:])
        return 0
    from tests.fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN)
    parser.add_argument("--no-report", action="store_true", help="do not write fuzz.md")
    parser.add_argument("targets", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    options = parser.parse_args()
    chosen = options.targets or list(TARGETS)
    unknown = sorted(set(chosen) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}")
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="fedward-fuzz-run-") as workdir:
        for target in chosen:
            outcome = run_target(target, options.runs, options.max_len, Path(workdir))
            outcomes.append(outcome)
            print(
                f"{target:20} {outcome.runs:>8} inputs  {outcome.crashes} crashes  "
                f"cov {outcome.edges}  ft {outcome.features}  {outcome.per_second:.0f}/s",
                flush=True,
            )
    report = write_report(outcomes, options.runs, options.max_len)
    if not options.no_report:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report)
        print(f"wrote {RESULTS.relative_to(REPO)}")
    short = [o.target for o in outcomes if o.runs < options.runs]
    if short:
        print(f"fewer inputs than asked for: {short}", file=sys.stderr)
    return 1 if any(o.crashes for o in outcomes) or short else 0


if __name__ == "__main__":
    sys.exit(main())
