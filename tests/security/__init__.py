"""Attacks on every trust boundary, through the real processes, each asserting the attack
fails and the target keeps serving."""
