"""Security tests: attacks on fedward's trust boundaries, written as an attacker who read the code.

Each case asserts that the attack fails and that the target keeps serving.
"""
