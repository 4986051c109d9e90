"""Stellar anchor and compliance gateway."""

__version__ = "0.1.0"
