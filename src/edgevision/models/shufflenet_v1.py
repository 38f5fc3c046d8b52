"""Placeholder: filled in by the shufflenet_v1 family work."""
