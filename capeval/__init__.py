"""capeval: caption evaluation and benchmarking.

Example:
    >>> import capeval
    >>> results = capeval.evaluate({"1": ["a dog runs"]}, {"mine": {"1": "a dog runs"}}, metrics=["rouge_l"])
    >>> round(results.summary_dict()["captioners"]["mine"]["rouge_l"]["mean"], 3)
    1.0
"""

from capeval.api import Results, evaluate  # noqa: E402
from capeval.registry import register_metric  # noqa: E402
from capeval.version import __version__  # noqa: E402

__all__ = ["Results", "__version__", "evaluate", "register_metric"]
