"""Recommendations: interaction features, classic baselines and the sequence transformer, training, batch scores, serving."""
