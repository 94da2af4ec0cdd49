"""inferedge: split deep neural networks across the edge-cloud continuum."""

__version__ = "0.1.0"
