"""Placeholder: filled in by the resnet block family work."""

__all__: list[str] = []
