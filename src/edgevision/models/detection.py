"""Detection models: spec tables and registered builders (``register_model(..., task='detection')``); none yet."""
