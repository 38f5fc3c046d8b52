"""Placeholder: filled in by the shufflenet_v2 block family work."""

__all__: list[str] = []
