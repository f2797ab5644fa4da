"""What one SMTP conversation is: the plan writes these, the SMTP probe carries them out."""

from __future__ import annotations

from dataclasses import dataclass

from fleet.credentials import SecretSource
from fleet.oauth import TokenRequest
from fleet.results import Mode, Security


@dataclass(frozen=True)
class ConversationSpec:
    """Everything that makes one conversation different from another."""

    id: str
    host: str
    port: int
    security: Security
    mode: Mode
    mail_from: str
    rcpt_to: str
    ehlo_name: str
    username: str | None = None
    mechanism: str | None = None  # plain | login | xoauth2; None: the best one offered
    secret: SecretSource | None = None
    oauth: bool = False
    token_request: TokenRequest | None = None  # fleet fetches the XOAUTH2 token itself
    tls_max: str | None = None
    tls_verify: bool = True
    ca_file: str | None = None

    @property
    def identity(self) -> str:
        """Whose login this is, for the one-AUTH-attempt-per-sweep rule: the mailbox, whichever
        endpoint (smtp.office365.com:587, smtp-legacy...) it is tried on. An OAuth login is
        another identity per app: a failed password (or another app's failure) must not stop
        the test of a way forward."""
        mailbox = (self.username or "").lower()
        if not self.oauth:
            return mailbox
        app = self.token_request
        return f"{mailbox} (oauth2 {app.describe() if app else 'token'})"
