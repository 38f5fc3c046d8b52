"""Segmentation models: spec tables and registered builders (``register_model(..., task='segmentation')``); none yet."""
