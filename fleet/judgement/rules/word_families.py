"""The last reading of a refusal no rule knows: the word families its words belong to.

Every rule above reads a structure (a subject and a cause, a code); a blind set still
brings wordings none of them knows ("not our user", "no DNS reverse for ...", "A secure
connection is requiered"). Before the honest fallback says "unrecognised", `replies` asks
which of these families the words belong to: when they belong to exactly ONE (and name no
policy, which says a rule was applied without saying which), that family's category is the
technician's reading; two or more, or none, stay unrecognised. Each family is a lexicon of
its subject or its cause (sisimai's reason lexicons, github.com/sisimai/p5-sisimai
lib/Sisimai/Reason/*.pm, were a source), not one reply's words. Bounded windows only.
"""

from __future__ import annotations

from fleet.judgement import remedies, vocabulary
from fleet.judgement.rule import Rule
from fleet.judgement.rule_ids import RuleId
from fleet.results import Category, Stage

_ENVELOPE = (Stage.mail, Stage.rcpt, Stage.data)
_NOT_AT_START = (Stage.ehlo, Stage.auth, Stage.ehlo_tls, Stage.mail, Stage.rcpt, Stage.data)
_REPUTATION = (
    r"(?:spam\w*|black ?list\w*|block ?list\w*|listed|reputation|abus(?:e|ive)\b(?!@)|banned|"
    r"rbl|dnsbl|prison|jail(?:ed)?|penalty ?box|black(?= (?:IP|host|client)\b))"
)

_ONE_RECIPIENT = (
    r"\b(?:recipient|addressee|user|mail ?box|(?:mail ?)?folder|account|local[- ]part|destinataire|destinatario|"
    r"utilisateur|usuario|benutzer|empf[aä]e?nger|postfach|casella|buz[oó]n)\b"
)

# a short window within a sentence (a dot inside a host name or an IP does not end it)
_WINDOW = r"(?:[^.;]|\.(?=\w)){0,60}?"


def _near(before: str, after: str) -> str:
    """A subject before words of reputation, or after them, within one short window."""
    return before + _WINDOW + r"\b" + _REPUTATION + r"|\b" + _REPUTATION + r"\b" + _WINDOW + after


# A refusal that names a policy, a permission or a confirmation names a rule it does not
# explain: "Recipient address rejected for policy reasons", "Client host rejected: Access
# denied" stay unrecognised whatever nouns they carry.
VETO = (
    r"polic(?:y|ies)|access denied|administrative|permission|\bconfirm|not welcome|"
    r"not who you say|\bunknown error\b|"
    # an error of the server's own while handling the message names no reason (Yahoo "Error
    # sending message for delivery.")
    r"\berror (?:while |in |when )?(?:sending|processing|delivering|handling|transmitting) "
    r"(?:the |this |your )?(?:message|mail|e-?mail)\b"
)

WORD_FAMILIES: tuple[Rule, ...] = (
    Rule(
        RuleId.words_tls,
        Category.tls_required,
        "the server refuses at {stage} and its words are about TLS or encryption",
        "The server's words point at encryption: set the copier's security to STARTTLS "
        "(port {port}) or implicit TLS, and read the reply text.",
        text=r"\b(?:TLS|SSL|STARTTLS|encrypt\w*|secure (?:connection|channel|session|transport))\b",
        stages=_NOT_AT_START,
        unless=r"handshake|version|cipher|certificate",
    ),
    Rule(
        RuleId.words_login,
        Category.auth_failed,
        "the server refused the login for {mailbox} (its words are about the login)",
        "The server's words are about the login of {mailbox}: check the username, the "
        "password and that the account may use SMTP.",
        text=r"\b(?:authenticat\w*|auth|log ?in|sign ?in|credentials?|passwords?|user ?name)\b",
        stages=(Stage.auth,),
    ),
    Rule(
        RuleId.words_login_wanted,
        Category.auth_required,
        "the server refuses at {stage} and its words are about a login",
        "The server's words point at a login: configure a mailbox and password (or OAuth) "
        "on the copier, or use a host that accepts unauthenticated mail for your domain.",
        text=r"\b(?:authenticat\w*|smtp ?auth|auth|log ?in|sign ?in|credentials?)\b",
        stages=(Stage.mail, Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.words_reverse_dns,
        Category.reverse_dns,
        "the receiver refuses {ip}: its words are about reverse DNS (PTR)",
        remedies.REVERSE_DNS_FIX,
        text=r"\b(?:ptr|rdns|reverse|fcrdns)\b",
    ),
    Rule(
        RuleId.words_helo,
        Category.helo_rejected,
        "the server refuses the EHLO name {ehlo_name} (its words are about HELO)",
        remedies.HELO_FIX,
        # ("helohost error": the name written as one word with what it names)
        text=rf"\b{vocabulary.HELO}(?:host|name)?\b",
    ),
    Rule(
        RuleId.words_relay,
        Category.relay_denied,
        "the server will not relay for this site (its words are about relaying)",
        "{host} does not relay for this site: send to a recipient in a domain {host} "
        "receives mail for, or send through a relay that accepts this site (authenticated "
        "submission on {submission}).",
        text=r"\brelay\w*|\brcpthosts?\b|\blocal (?:users?|domains?|recipients?)\b",
        stages=(Stage.mail, Stage.rcpt),
    ),
    Rule(
        RuleId.words_limit,
        Category.throttled,
        "the server refuses at {stage} and its words are about a limit",
        "The server's words point at a limit on this site's sending: reduce how many devices "
        "send at once and how often, or wait and try again later.",
        text=r"\btoo (?:many|much|often|fast|frequent\w*)\b|\blimit\w*|\bexceed\w*|\brate\b|"
        r"\bfrequen\w*|\bthrottl\w*|\bmax(?:imum)? (?:number|sessions|connections|"
        r"concurrent)\b",
        unless=r"\bsize\b|\bbytes?\b|large|\bbig\b|length|quota|storage|mail ?box|\bdisk\b|"
        r"\bfull\b|\blines?\b|header",
    ),
    Rule(
        RuleId.words_ip_reputation,
        Category.ip_reputation,
        "the server refuses {ip}: its words put the site's IP or host with spam or a list",
        remedies.IP_REPUTATION_FIX,
        text=_near(
            r"\b(?:IP(?:v[46])?|client|connect\w*|(?:your|sending|sender) (?:host|server|"
            r"network)|network)\b",
            r"\b(?:IP(?:v[46])?|client|your (?:host|server|network))\b",
        ),
        unless=r"\bdomains?\b|\burl|\buri\b|\bsender\b|\bmessage|\bcontent",
    ),
    Rule(
        RuleId.words_domain_reputation,
        Category.domain_reputation,
        "{listed_domain} is refused for its reputation (its words put a domain with spam or "
        "a list)",
        remedies.DOMAIN_LISTED_FIX,
        text=_near(r"\bdomains?\b", r"\bdomains?\b"),
        unless=r"\bIP\b|\bclient\b",
    ),
    Rule(
        RuleId.words_recipient,
        Category.recipient_rejected,
        "the server refuses the recipient (its words are about the recipient)",
        "The server's words are about the test recipient: check the 'to' address (it may not "
        "exist, be disabled or full, or refuse this sender).",
        # (singular: "one or more recipients" speaks of the transaction, not of one recipient)
        text=_ONE_RECIPIENT,
        stages=(Stage.rcpt, Stage.data),
        # ("user complaints" are about the sender's mail)
        unless=vocabulary.NOT_THE_RECIPIENT + r"|complain",
    ),
    Rule(
        RuleId.words_sender,
        Category.sender_rejected,
        "the server refuses the sender {sender} (its words are about the sender)",
        "The server's words are about the sender {sender}: use an address in a domain the "
        "server accepts mail from, with working DNS and SPF.",
        text=vocabulary.SENDER_NOUN,
        stages=_ENVELOPE,
    ),
    Rule(
        # at MAIL FROM the only address or user on the table is the sender's
        RuleId.words_sender_at_mail,
        Category.sender_rejected,
        "the server refuses the sender {sender} (its words are about the address)",
        "The server's words are about the sender {sender}: use an address in a domain the "
        "server accepts mail from, with working DNS and SPF.",
        text=_ONE_RECIPIENT + r"|\b(?:e-?mail )?address\b",
        stages=(Stage.mail,),
        unless=r"\bIP\b|client|\bhost\b|server|connection",
    ),
    Rule(
        RuleId.words_message,
        Category.message_rejected,
        "the server refuses the message (its words are about the message)",
        "The receiver's words are about the test message itself: try a small scan with a "
        "plain subject and a PDF attachment, and ask the administrator of {host} which "
        "filter refused it.",
        text=r"\b(?:message|content|attachment|body|file|subject|virus|malware|macros?)s?\b",
        stages=(Stage.data,),
        unless=r"\bIP\b|your (?:host|server|network)",
    ),
)

# The families that name what was refused, not why: any cause family above beats them.
SUBJECT_FAMILIES = frozenset(
    {
        RuleId.words_login,
        RuleId.words_login_wanted,
        RuleId.words_recipient,
        RuleId.words_sender,
        RuleId.words_sender_at_mail,
        RuleId.words_message,
    }
)
