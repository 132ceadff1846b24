"""Verdict: the only code that parses packets."""
