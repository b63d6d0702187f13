"""Narrative Monitor: watch news feeds for known disinformation narratives."""

__version__ = "0.1.0"
