"""Hypothesis settings for the property tests: derandomized, so a CI run is repeatable
(the fuzzer, ``make fuzz``, is where inputs are searched for at length), and no example
database left in the work tree."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fedward",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("fedward")
