"""``capeval board``: leaderboards that last, in a folder with an embedded SQLite database.

A board fixes its references (sha256 of their texts) and, from its first submission, each metric's signature;
a run whose references or score-moving signature fields differ is refused naming them (or, with a track name,
ranked on a separate track). Submissions keep their history. Rankings use :mod:`capeval.stats` on the board's
data read back as one run, so tiers are those of ``capeval stats`` on the same runs.

Example:
    >>> from capeval.board import init_board, add_submission  # doctest: +SKIP
    >>> init_board("boards/coco", "mscoco_references.jsonl")  # doctest: +SKIP
    >>> add_submission("boards/coco", "runs/mine", name="mine-v1")  # doctest: +SKIP
"""

from capeval.board.db import DB_FILE, open_board
from capeval.board.ranking import history, leaderboard, track_run, track_stats, tracks
from capeval.board.submit import MAIN_TRACK, add_submission, init_board, remove_submission

__all__ = ["DB_FILE", "MAIN_TRACK", "add_submission", "history", "init_board", "leaderboard", "open_board",
           "remove_submission", "track_run", "track_stats", "tracks"]
