"""dlbench: measured evidence about deep-learning training choices."""

__version__ = "0.1.0"
