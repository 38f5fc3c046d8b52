"""``repnas`` (RepNAS, Zhang et al. 2021): per-layer branch search of diverse-branch blocks, fused to one conv.

Not implemented yet: it needs a branch-subset field on ``DiverseBranchConvSpec`` (blocks/diverse_branch.py),
which is being edited by another change; see docs/search.md.
"""

from __future__ import annotations

from .result import SearchError

__all__ = ["run_repnas"]


def run_repnas(context, **options):
    raise SearchError("strategy 'repnas' is not implemented yet (it needs per-branch switches on DiverseBranchConvSpec); use dnas, evolution or random")
