"""Placeholder: filled in by the mobileone block family work."""

__all__: list[str] = []
