"""hazwatch: edge gateway and tracking/alerting service for work-safety supervision."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hazwatch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
