"""shoplake: pretrained-transformer AI for online shops on Spark, Delta Lake and Ray."""

__version__ = "0.1.0"
