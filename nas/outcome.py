"""How a child ended: a TrialStatus and its reason, read from and written as the store's status strings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class TrialStatus(str, Enum):
    """A child's state; its value is the status string the run store has always kept."""

    OK = "ok"
    DIVERGED = "diverged"
    FAILED = "failed"
    STOPPED = "stopped"  # ended early by the scheduler: its metrics are low-fidelity but usable
    RUNNING = "running"


@dataclass(frozen=True)
class Outcome:
    """A status with the reason beside it (only a failure has one): `str()` is the stored string."""

    status: TrialStatus
    reason: str = ""

    @classmethod
    def parse(cls, text: str) -> Outcome:
        """Read a stored status ("ok", "failed: out of memory: ..."); an unknown word is a failure with that reason."""
        word, sep, reason = text.partition(":")
        try:
            status = TrialStatus(word.strip())
        except ValueError:  # a status string no nas ever wrote: keep all of it as the reason
            return cls(TrialStatus.FAILED, text)
        return cls(status, reason.strip() if sep else "")

    @classmethod
    def failed(cls, reason: str) -> Outcome:
        return cls(TrialStatus.FAILED, reason)

    def __str__(self) -> str:
        return f"{self.status.value}: {self.reason}" if self.reason else self.status.value

    @property
    def usable(self) -> bool:
        """Whether the child's metrics may be learned from (finished, or stopped early by the scheduler)."""
        return self.status in (TrialStatus.OK, TrialStatus.STOPPED)

    @property
    def finished(self) -> bool:
        """Whether the child is over, whatever its end."""
        return self.status is not TrialStatus.RUNNING

    @property
    def unusable(self) -> bool:
        """Whether the child ended without usable metrics (failed or diverged)."""
        return self.status in (TrialStatus.FAILED, TrialStatus.DIVERGED)


OK = Outcome(TrialStatus.OK)
STOPPED = Outcome(TrialStatus.STOPPED)
RUNNING = Outcome(TrialStatus.RUNNING)
INTERRUPTED = Outcome(TrialStatus.STOPPED, "interrupted")  # a signal stopped the search: --resume reruns the child
