"""Placeholder: filled in by the repvgg family work."""
