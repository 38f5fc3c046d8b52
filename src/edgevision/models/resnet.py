"""Placeholder: filled in by the resnet family work."""
