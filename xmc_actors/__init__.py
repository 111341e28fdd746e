"""xmc-actors: cross-market pair execution on Ray."""
__version__ = "0.1.0"
