"""Super-resolution models: spec tables and registered builders (``register_model(..., task='super-resolution')``); none yet."""
