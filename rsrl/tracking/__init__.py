"""Experiment trackers (Weights & Biases, MLflow): each stage that runs is one tracker run.

The driver checks and opens the trackers before any stage runs (`session.open_tracking`);
each running stage gets a Ray actor that owns its tracker runs (`stage.track_stage`), fed
per step by the rank-0 worker's MetricsWriter and, at the end, with the stage's result.
wandb and mlflow are imported only by the tracker that uses them, and only when the spec
has `logging:`.
"""
