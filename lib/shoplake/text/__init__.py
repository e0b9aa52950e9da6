"""The shared text backbone: the pretrained encoder, the fine-tuned classifier and its baselines, text bundles, splits and metrics."""
