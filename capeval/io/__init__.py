"""Reading, validating and aligning caption files."""

from capeval.io.align import Dataset, align
from capeval.io.readers import CaptionFile, read_candidates, read_references

__all__ = ["CaptionFile", "Dataset", "align", "read_candidates", "read_references"]
