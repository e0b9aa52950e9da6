"""Fraud detection: point-in-time payment features (batch and online), rules, GBDT and a neural model, scores and reasons."""
