"""fleet: which office copiers will fail to scan-to-email, and why."""

__version__ = "0.1.0"
