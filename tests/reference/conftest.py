"""Reference suite: runs only where timm and torchvision are installed (``make test-reference``, .venv-ref)."""

import pytest

try:
    import timm  # noqa: F401
    import torchvision  # noqa: F401
except ImportError as error:  # pragma: no cover - the main venv never collects this directory
    pytest.skip(f"the reference suite needs timm and torchvision ({error}); run `make test-reference`", allow_module_level=True)
