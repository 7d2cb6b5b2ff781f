"""Bad data: what a source cannot turn into a record (a missing or truncated image, an annotation of
an unknown image, a box without area, a depth map without one valid pixel).

A reader raises `BadRecord`, naming the file and the record; nothing else raises it, so code that
skips bad records catches data errors only, never bugs. By default a BadRecord stops the run. With
`--skip-bad-records` (`BadRecords(skip=True)`) the record is skipped, reported once (a line naming
the source, the record and the reason) and counted per source.

Data found bad while a split is indexed (an annotation of an image the file does not list) belongs
to no record: the split leaves it out and keeps it in `split.problems`; reading such a split raises
the first problem unless its reader accepted them (`split.accept_problems()`, which skipping does).
"""
from __future__ import annotations

from collections import Counter
from typing import Callable


class BadRecord(ValueError):
    """Data that cannot become a record: says which file and which record."""

    def __init__(self, file, record=None, problem: str | None = None):
        if record is None and problem is None:       # rebuilt from its message (a data worker's re-raise)
            super().__init__(str(file))
        else:
            super().__init__(f"{file}: record {record}: {problem}")
        self.file, self.record, self.problem = file, record, problem


class BadRecords:
    """Whether bad records are skipped, and the ones met so far: {(source, message): reason}.
    A record met several times (the mixture draws with replacement) is reported and counted once."""

    def __init__(self, skip: bool = False):
        self.skip, self.seen = bool(skip), {}

    def note(self, source: str, message: str) -> None:
        """Records one skipped record of `source`; reports it the first time."""
        key = (str(source), str(message))
        if key not in self.seen:
            self.seen[key] = True
            import sys

            from tqdm import tqdm
            tqdm.write(f"skipped a bad record of source {source!r}: {message}", file=sys.stderr)

    def attempt(self, source: str, make: Callable):
        """make(); None (the record skipped and noted) when it raises BadRecord and bad records are skipped;
        None, noted nowhere, when the record holds nothing the task asks about (NothingToAsk)."""
        from unio.task import NothingToAsk
        try:
            return make()
        except NothingToAsk:
            return None
        except BadRecord as error:
            if not self.skip:
                raise
            self.note(source, str(error))
            return None

    def open_split(self, source, name: str, split: str):
        """source.split(split); data left out of it while indexing raises, or is noted when skipping."""
        records = source.split(split)
        problems = list(getattr(records, "problems", ()))
        if problems and not self.skip:
            raise problems[0]
        for problem in problems:
            self.note(name, str(problem))
        if problems:
            records.accept_problems()
        return records

    def counts(self) -> dict:
        """{source: records skipped}, sources in order of their first skip."""
        return dict(Counter(source for source, _ in self.seen))

    def summary(self) -> str:
        counts = self.counts()
        if not counts:
            return "no bad records were met"
        return f"skipped {sum(counts.values())} bad record(s): " + ", ".join(f"{s} {n}" for s, n in counts.items())

    def state(self) -> list:
        """What a checkpoint keeps, so a resumed run counts on from where it was."""
        return [list(key) for key in self.seen]

    def restore(self, state) -> None:
        self.seen.update({(str(s), str(m)): True for s, m in state or ()})
