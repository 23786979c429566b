"""Metric implementations. Each module implements one metric family; see :mod:`capeval.registry`."""
