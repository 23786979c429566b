"""capeval's version: the one place it is written (the package, signatures, manifests and the wheel read it)."""

__version__ = "0.2.0"
