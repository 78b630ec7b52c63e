"""The mount namespace bubblewrap builds for a job worker."""

from __future__ import annotations

from pathlib import Path

from fedward.node.jobs.bubblewrap import SandboxView, bubblewrap_argv


def mounts(argv: list[str]) -> list[tuple[str, str]]:
    """(option, target) in the order bubblewrap applies them."""
    found = []
    for index, option in enumerate(argv):
        if option in ("--ro-bind", "--ro-bind-try", "--bind"):
            found.append((option, argv[index + 2]))
        elif option in ("--tmpfs", "--proc", "--dev"):
            found.append((option, argv[index + 1]))
    return found


def view(**fields: object) -> SandboxView:
    defaults: dict[str, object] = {
        "python": [Path("/tmp/checkout/.venv"), Path("/opt/python")],
        "read_only": [Path("/tmp/data/cohort.csv"), Path("/srv/node/jobs/e/inputs")],
        "writable": [Path("/srv/node/jobs/e/work")],
        "hidden": [Path("/srv/node"), Path("/opt/python/secrets")],
    }
    return SandboxView(**{**defaults, **fields})  # type: ignore[arg-type]


def test_an_installation_under_tmp_is_bound_on_top_of_the_fresh_tmp() -> None:
    order = mounts(bubblewrap_argv("bwrap", view(), Path("/srv/node/jobs/e/work")))
    assert order.index(("--tmpfs", "/tmp")) < order.index(("--ro-bind-try", "/tmp/checkout/.venv"))
    assert order.index(("--tmpfs", "/tmp")) < order.index(("--ro-bind", "/tmp/data/cohort.csv"))


def test_secrets_inside_a_bound_folder_are_covered_before_the_job_folders_are_bound() -> None:
    order = mounts(bubblewrap_argv("bwrap", view(), Path("/srv/node/jobs/e/work")))
    hidden = order.index(("--tmpfs", "/opt/python/secrets"))
    assert order.index(("--ro-bind-try", "/opt/python")) < hidden
    # The node's state folder is not under a bound folder: nothing to cover, never shown.
    assert ("--tmpfs", "/srv/node") not in order
    assert order[-1] == ("--bind", "/srv/node/jobs/e/work")


def test_only_what_the_job_needs_is_writable() -> None:
    order = mounts(bubblewrap_argv("bwrap", view(), Path("/srv/node/jobs/e/work")))
    assert [target for option, target in order if option == "--bind"] == ["/srv/node/jobs/e/work"]
