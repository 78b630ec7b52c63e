"""Digest of a training plan's canonical source, and that canonical source itself.

A plan's *canonical* text is its syntax tree unparsed (``ast.unparse(ast.parse(text))``):
comments, blank lines and formatting are gone, every token that changes behaviour stays.
Docstrings are code (they can be read at run time), so they stay.

The node never runs the text a researcher sent: it runs the canonical text, written by
the node, in UTF-8, and hashes exactly that. So the transformations that keep a plan
approved — reformatting, comments, quote styles, redundant parentheses, line breaks —
are safe *because* none of them reaches the code that runs. What would break that
promise is a text read one way by the parser and another way at import; hence:

- plan bytes must be strict UTF-8, without a byte-order mark, and may declare no other
  source encoding (a PEP 263 ``# coding: utf-7`` line makes the import machinery decode
  a comment into code that ``ast.parse`` of the text never saw);
- the canonical text must be a fixed point (normalising it again changes nothing) and
  must itself carry no encoding declaration, so that the import reads what was hashed.

``docs/security.md`` lists the rules with their reasons.
"""

from __future__ import annotations

import ast
import hashlib
import io
import tokenize

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


def plan_text(data: bytes) -> str:
    """The text of a plan's bytes: strict UTF-8, no BOM, no other declared encoding."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise PlanError("training plan starts with a byte-order mark; send plain UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(f"training plan is not UTF-8 text (byte {exc.start})") from exc
    _refuse_declared_encoding(data)
    return text


def _refuse_declared_encoding(data: bytes) -> None:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:  # an unknown or invalid codec named in a coding line
        raise PlanError(f"training plan declares an unusable source encoding: {exc}") from exc
    if encoding != "utf-8":
        raise PlanError(
            f"training plan declares the source encoding {encoding!r}; only UTF-8 is run",
            hint="remove the '# coding:' line and save the file as UTF-8",
        )


def normalise_source(source: str) -> str:
    """The canonical text of ``source``: what a node hashes, shows and runs."""
    _refuse_declared_encoding(source.encode("utf-8", "surrogatepass"))
    canonical = _unparsed(source)
    if _unparsed(canonical) != canonical:
        raise PlanError("training plan does not survive normalisation unchanged")
    return canonical


def _unparsed(source: str) -> str:
    try:
        return ast.unparse(ast.parse(source))
    except SyntaxError as exc:
        raise PlanError(f"training plan is not valid Python: line {exc.lineno}: {exc.msg}") from exc
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        raise PlanError(f"training plan cannot be parsed: {type(exc).__name__}") from exc


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
