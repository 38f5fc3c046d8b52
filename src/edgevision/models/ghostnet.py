"""Placeholder: filled in by the ghostnet family work."""
