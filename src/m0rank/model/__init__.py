"""Model families behind one three-stage contract, chosen by ``config.json`` architectures."""

from m0rank.model.base import LoadOptions, PreparedPair, RerankerArchitecture
from m0rank.model.registry import resolve_architecture, supported_architectures

__all__ = [
    "LoadOptions",
    "PreparedPair",
    "RerankerArchitecture",
    "resolve_architecture",
    "supported_architectures",
]
