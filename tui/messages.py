"""Messages every screen's workers share. A worker that fails posts BackendFailed with
what it was doing and the user-facing reason; the screen shows it as a notification
and never crashes."""
from __future__ import annotations

from textual.message import Message


class BackendFailed(Message):
    def __init__(self, action: str, error: str) -> None:
        super().__init__()
        self.action = action
        self.error = error


def error_text(exc: BaseException) -> str:
    """CairnError (and the remote client's errors) carry a user-facing `message`."""
    return str(getattr(exc, "message", "") or exc or type(exc).__name__)
