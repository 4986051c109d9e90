"""The port that delivers verification codes to customers (SMS, email), and the default
adapter that writes them to the log for operators of a test setup.

The log line names the customer and the channel, never the phone number or address."""

from __future__ import annotations

import logging
from typing import Literal, Protocol

log = logging.getLogger("gateway.notifier")

Channel = Literal["sms", "email"]


class Notifier(Protocol):
    async def send_code(
        self, channel: Channel, destination: str, code: str, customer_id: str
    ) -> None:
        """Deliver ``code`` to ``destination``. Failures are logged; the customer asks for a
        new code by sending the field again."""


class LogNotifier:
    async def send_code(
        self, channel: Channel, destination: str, code: str, customer_id: str
    ) -> None:
        log.warning(
            "verification code for customer %s by %s: %s (log notifier: configure a "
            "real SMS/email adapter to reach customers)",
            customer_id,
            channel,
            code,
        )
