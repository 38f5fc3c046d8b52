"""Depth models: spec tables and registered builders (``register_model(..., task='depth')``); none yet."""
