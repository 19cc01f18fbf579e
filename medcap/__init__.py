"""medcap: a radiology caption review studio.

The package holds everything behind the app: model adapters (`medcap.models`), data readers
(`medcap.data`), caption metrics (`medcap.metrics`) and review storage (`medcap.review`).
"""

__version__ = "0.1.0"
