"""offrl: interchangeable IQL-family critics and policy extractors on one shared trainer."""
__version__ = "0.1.0"
