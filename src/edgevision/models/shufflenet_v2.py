"""Placeholder: filled in by the shufflenet_v2 family work."""
