"""The recommender model families: popularity and co-occurrence baselines, matrix factorization, the sequence transformer."""
