"""Digest of a training plan's normalised source.

Normalisation parses the source and unparses the syntax tree, which drops comments,
blank lines and formatting while keeping every token that changes behaviour. Docstrings
are code (they can be read at run time), so they stay. The digest therefore binds the
exact behaviour that will run: a changed constant changes it, a re-indented comment
does not.
"""

from __future__ import annotations

import ast
import hashlib

from fedward.errors import PlanError

# Only algorithms whose name says what they are; all are in hashlib everywhere.
DIGEST_ALGORITHMS = (
    "sha256",
    "sha384",
    "sha512",
    "sha3_256",
    "sha3_384",
    "sha3_512",
    "blake2b",
    "blake2s",
)
DEFAULT_ALGORITHM = "sha256"


def normalise_source(source: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise PlanError(f"training plan is not valid Python: line {exc.lineno}: {exc.msg}") from exc
    return ast.unparse(tree)


def plan_digest(source: str, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """Return ``"<algorithm>:<hex>"`` for the normalised ``source``."""
    if algorithm not in DIGEST_ALGORITHMS:
        raise PlanError(
            f"unknown digest algorithm {algorithm!r}",
            hint="choose one of " + ", ".join(DIGEST_ALGORITHMS),
        )
    hasher = hashlib.new(algorithm)
    hasher.update(normalise_source(source).encode("utf-8"))
    return f"{algorithm}:{hasher.hexdigest()}"


def digest_algorithm(digest: str) -> str:
    """The algorithm part of a digest string, validated."""
    algorithm, sep, hexpart = digest.partition(":")
    if not sep or algorithm not in DIGEST_ALGORITHMS or not hexpart:
        raise PlanError(f"malformed plan digest {digest!r}")
    return algorithm
