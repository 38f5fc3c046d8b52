"""Placeholder: filled in by the repghostnet family work."""
