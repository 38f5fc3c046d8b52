"""Placeholder: filled in by the selective_kernel block family work."""

__all__: list[str] = []
