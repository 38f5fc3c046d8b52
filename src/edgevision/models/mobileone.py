"""Placeholder: filled in by the mobileone family work."""
