"""Placeholder: filled in by the repghost block family work."""

__all__: list[str] = []
