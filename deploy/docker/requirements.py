"""Print the third-party requirements of fedward's extras, read from pyproject.toml alone.

The image build installs them in a layer of their own, before fedward itself, so that a
change to fedward's code rebuilds one small layer instead of every dependency. Extras that
name fedward's other extras (``fedward[node,uploads]``) are expanded.

    python3 requirements.py PYPROJECT EXTRA...
"""

from __future__ import annotations

import re
import sys
import tomllib


def expand(extras: dict[str, list[str]], name: str, seen: set[str]) -> list[str]:
    if name in seen:
        return []
    if name not in extras:
        raise SystemExit(
            f"no extra {name!r} in pyproject.toml (known: {', '.join(sorted(extras))})"
        )
    seen.add(name)
    found: list[str] = []
    for requirement in extras[name]:
        own = re.fullmatch(r"fedward\[([^\]]+)\]", requirement.replace(" ", ""))
        if own:
            for inner in own[1].split(","):
                found += expand(extras, inner, seen)
        else:
            found.append(requirement)
    return found


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    with open(argv[1], "rb") as file:
        project = tomllib.load(file)["project"]
    wanted: list[str] = list(project.get("dependencies", []))
    seen: set[str] = set()
    for extra in argv[2:]:
        wanted += expand(project["optional-dependencies"], extra, seen)
    print("\n".join(dict.fromkeys(wanted)))


if __name__ == "__main__":
    main(sys.argv)
