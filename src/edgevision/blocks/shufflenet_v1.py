"""Placeholder: filled in by the shufflenet_v1 block family work."""

__all__: list[str] = []
