from __future__ import annotations

import hashlib

import msgspec
import pytest

from fedward.core.messages import PlanDigest
from fedward.core.plan_digest import (
    DEFAULT_ALGORITHM,
    DIGEST_ALGORITHMS,
    digest_algorithm,
    normalise_source,
    plan_digest,
)
from fedward.errors import PlanError

PLAN = '''
import numpy as np


class Plan:
    """Adds a constant."""

    STEP = 0.5

    def train(self, params):
        return {k: v + self.STEP for k, v in params.items()}
'''

# Same code: other quotes, spacing, blank lines, line breaks, and new comments.
PLAN_REFORMATTED = '''
# a comment the node admin added
import numpy as np
class Plan:
    """Adds a constant."""
    STEP = .5     # half a step

    def train(self,params):   # the one method
        return {
            k: v + self.STEP   # still the same
            for k, v in params.items()
        }
'''

PLAN_CHANGED_CONSTANT = PLAN.replace("STEP = 0.5", "STEP = 0.6")


def test_reformatting_and_new_comments_keep_the_digest() -> None:
    assert plan_digest(PLAN) == plan_digest(PLAN_REFORMATTED)


def test_one_changed_constant_changes_the_digest() -> None:
    assert plan_digest(PLAN) != plan_digest(PLAN_CHANGED_CONSTANT)


def test_a_changed_docstring_changes_the_digest_because_code_can_read_it() -> None:
    assert plan_digest(PLAN) != plan_digest(PLAN.replace("Adds a constant.", "Adds more."))


def test_the_default_algorithm_is_sha256() -> None:
    assert DEFAULT_ALGORITHM == "sha256"
    assert plan_digest(PLAN).startswith("sha256:")


@pytest.mark.parametrize("algorithm", DIGEST_ALGORITHMS)
def test_each_algorithm_is_really_the_one_it_names(algorithm: str) -> None:
    # The named constructor, not hashlib.new(name): a mix-up in the table would show here.
    expected = getattr(hashlib, algorithm)(normalise_source(PLAN).encode("utf-8")).hexdigest()
    assert plan_digest(PLAN, algorithm) == f"{algorithm}:{expected}"


def test_known_vector_for_sha256_of_the_normalised_source() -> None:
    source = "x = 1  # comment\n"
    assert normalise_source(source) == "x = 1"
    assert plan_digest(source) == "sha256:" + hashlib.sha256(b"x = 1").hexdigest()


def test_different_algorithms_give_different_digests() -> None:
    assert len({plan_digest(PLAN, a) for a in DIGEST_ALGORITHMS}) == len(DIGEST_ALGORITHMS)


@pytest.mark.parametrize("algorithm", DIGEST_ALGORITHMS)
def test_every_digest_fits_the_wire_format_of_messages(algorithm: str) -> None:
    digest = plan_digest(PLAN, algorithm)
    assert msgspec.convert(digest, PlanDigest) == digest


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", "sha256 ", "shake_128", ""])
def test_unknown_or_weak_algorithms_are_refused_with_the_choices_listed(algorithm: str) -> None:
    with pytest.raises(PlanError, match="unknown digest algorithm") as caught:
        plan_digest(PLAN, algorithm)
    assert caught.value.hint is not None and "sha256" in caught.value.hint


def test_source_that_is_not_python_is_a_plan_error_naming_the_line() -> None:
    with pytest.raises(PlanError, match="line 2"):
        plan_digest("x = 1\ndef broken(:\n")


@pytest.mark.parametrize("algorithm", DIGEST_ALGORITHMS)
def test_the_algorithm_is_read_back_from_a_digest(algorithm: str) -> None:
    assert digest_algorithm(plan_digest(PLAN, algorithm)) == algorithm


@pytest.mark.parametrize("digest", ["sha256", "sha256:", "md5:abcd", ":abcd", "abcd"])
def test_malformed_digests_are_refused(digest: str) -> None:
    with pytest.raises(PlanError, match="malformed plan digest"):
        digest_algorithm(digest)
