"""What every state machine here shares: the event a move leaves in its history, and the
error a move the machine does not have raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.errors import Conflict


@dataclass(frozen=True, slots=True)
class Event:
    from_status: str | None
    to_status: str
    actor: str
    reason: str | None
    at: datetime


class IllegalTransition(Conflict):
    def __init__(self, current: str, wanted: str, what: str = "transfer"):
        super().__init__(f"a {what} in {current} cannot become {wanted}")
        self.current = current
        self.wanted = wanted
