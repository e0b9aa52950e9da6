"""The training platform: the Ray Train loop (resume, checkpoints) and the model metrics table."""
