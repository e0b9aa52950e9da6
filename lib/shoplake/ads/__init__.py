"""Sponsored-product ads: point-in-time impression features, click and conversion models fused with the text encoder, calibrated."""
