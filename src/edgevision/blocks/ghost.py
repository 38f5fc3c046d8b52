"""Placeholder: filled in by the ghost block family work."""

__all__: list[str] = []
