"""Serving on Ray Serve: the HTTP ingress and what every use case's routes share."""
