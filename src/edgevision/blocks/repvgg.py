"""Placeholder: filled in by the repvgg block family work."""

__all__: list[str] = []
