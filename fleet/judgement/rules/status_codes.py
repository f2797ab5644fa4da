"""The fallbacks by code: RFC 3463 enhanced status codes read by class, subject and detail
where IANA's registry gives one party, then RFC 5321's basic 50x codes."""

from __future__ import annotations

from fleet.judgement.rule import Rule
from fleet.judgement.rule_ids import RuleId
from fleet.results import Category, Stage

STATUS_CODES: tuple[Rule, ...] = (
    # -- RFC 3463 enhanced status codes, read by class, subject and detail when no words did.
    # Only the registered meanings that point at one party (IANA's SMTP Enhanced Status Codes
    # registry); X.7.1 "delivery not authorized" and X.4.x routing name no cause of their own.
    Rule(
        RuleId.status_sender_address,
        Category.sender_rejected,
        "the server refuses the sender address {sender} (its status code says so)",
        "The server refuses {sender} as a sender (X.1.7/X.1.8: bad sender address or its "
        "domain): use an address in a domain that exists and that the server accepts.",
        enhanced=("5.1.7-5.1.8", "4.1.7-4.1.8"),
    ),
    Rule(
        RuleId.status_recipient_address,
        Category.recipient_rejected,
        "the server refuses the recipient (its status code says the address is the problem)",
        "The server refuses the test recipient (X.1.x: an address status code): check the "
        "'to' address and that its domain receives mail.",
        enhanced=("5.1.0-5.1.6", "5.1.9-5.1.99"),
        stages=(Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.status_recipient_mailbox,
        Category.recipient_rejected,
        "the recipient's mailbox is disabled or full (its status code says so)",
        "The test recipient's mailbox is disabled or full (X.2.1/X.2.2): send the test to a "
        "live mailbox with room, or have it emptied.",
        enhanced=("5.2.1-5.2.2", "5.2.4", "4.2.2"),
        stages=(Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.status_too_many_recipients,
        Category.throttled,
        "the message has more recipients than the server takes at once",
        "The server takes fewer recipients per message (X.5.3): send the scan to fewer "
        "recipients at once, or to a distribution group.",
        enhanced=("5.5.3",),
    ),
    Rule(
        RuleId.status_protocol,
        Category.protocol_error,
        "the server refuses a command as invalid (its status code says so)",
        "{endpoint} refused a command as invalid or out of place (X.5.x): an SMTP-inspecting "
        "firewall between the site and {host} can cause this; else tell the server's "
        "administrator, with the reply text.",
        enhanced=("5.5.1-5.5.2", "5.5.4-5.5.6"),
        # at AUTH too: the mechanism and login rules have read the words already (RFC 4954's
        # "501 5.5.2 Cannot Base64-decode Client responses" is a syntax error)
        stages=(Stage.banner, Stage.auth, Stage.mail, Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.status_content,
        Category.message_rejected,
        "the server refuses the message's format or content (its status code says so)",
        "The receiver refuses the test message's format or encoding (X.6.x): check the "
        "copier's character set and attachment settings, or update its firmware.",
        enhanced=("5.6.0-5.6.6", "5.6.8-5.6.99"),
    ),
    Rule(
        RuleId.status_message_integrity,
        Category.message_rejected,
        "the server refuses the message itself (message integrity or policy, X.7.7)",
        "The receiver refused the test message itself (X.7.7): read the reply; scans are "
        "usually refused for their size or attachment type.",
        enhanced=("5.7.7",),
        stages=(Stage.data,),
    ),
    Rule(
        RuleId.status_sender_authentication,
        Category.sender_rejected,
        "the receiver rejects the sender for SPF, DKIM, DMARC or ARC (its status code says so)",
        "The sender domain's SPF/DKIM/DMARC does not authorise this source (X.7.20-X.7.29): "
        "add ip4:{ip} to the SPF record of {sender}'s domain, or send through an authorised "
        "relay.",
        enhanced=("5.7.20-5.7.24", "5.7.27", "5.7.29"),
    ),
    Rule(
        RuleId.status_recipient_owner_changed,
        Category.recipient_rejected,
        "the recipient's mailbox or domain changed owner (its status code says so)",
        "The test recipient's mailbox or domain has a new owner (X.7.17/X.7.18): check the "
        "'to' address.",
        enhanced=("5.7.17-5.7.18",),
        stages=(Stage.rcpt, Stage.data),
    ),
    Rule(
        # X.7.12 password transition needed, X.7.13 account disabled (RFC 4954): at AUTH
        # they are about the login.
        RuleId.status_login_refused,
        Category.auth_failed,
        "the server refused the login for {mailbox} (its status code says so)",
        "The server refused the login of {mailbox} (X.7.12/X.7.13: a password change "
        "needed, or the account disabled): check the account and its "
        "password, then update the copier.",
        enhanced=("5.7.12-5.7.13", "4.7.12"),  # X.7.8 is the fallback's already
        stages=(Stage.auth,),
    ),
    Rule(
        # X.3.1 mail system full, X.3.2 system not accepting network messages: the receiver's
        # own state, not a verdict on this site.
        RuleId.status_receiver_not_accepting,
        Category.temporary_failure,
        "the receiving system is not accepting mail now (its status code says so)",
        "{host} says its mail system is full or not accepting mail (X.3.1/X.3.2): run the "
        "site again later; if it persists, ask the administrator of {host}.",
        # (X.3.5 "system incorrectly configured": its own setup too)
        enhanced=("5.3.1-5.3.2", "5.3.5"),  # a 4xx is a deferral already
    ),
    # The rest of RFC 3463's registry where its meaning names one party (judge7, #16): the
    # receiving system's features (X.3.3), a disabled recipient account
    # (X.7.13 outside AUTH), a message's priority (X.7.15/X.7.16).
    Rule(
        RuleId.status_system,
        Category.message_rejected,
        "the receiving system cannot handle a feature of this message (its status code says so)",
        "{host} cannot handle a feature of the test message (X.3.3, e.g. 8-bit or a MIME "
        "feature): check the copier's encoding and attachment settings, or update its firmware.",
        enhanced=("5.3.3",),
        stages=(Stage.mail, Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.status_recipient_disabled,
        Category.recipient_rejected,
        "the recipient's account is disabled (its status code says so)",
        "The test recipient's account is disabled (X.7.13): send the test to a live mailbox.",
        enhanced=("5.7.13",),
        stages=(Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.status_message_priority,
        Category.message_rejected,
        "the server refuses the message for its priority (its status code says so)",
        "The receiver refuses the test message's priority or its size at that priority "
        "(X.7.15/X.7.16): send it without a priority header, or smaller.",
        enhanced=("5.7.15-5.7.16",),
        stages=(Stage.data,),
    ),
    Rule(
        # RFC 5321 500-504: syntax error, bad parameters, not implemented, bad sequence.
        # Not at EHLO (the name, see helo.syntax_code), STARTTLS (no TLS) or AUTH (mechanism).
        RuleId.code_command_syntax,
        Category.protocol_error,
        "the server refuses a command as invalid or out of sequence (50x)",
        "{endpoint} refused a command as invalid, unimplemented or out of sequence (RFC 5321 "
        "50x): an SMTP-inspecting firewall between the site and {host} can cause this; else "
        "tell the server's administrator, with the reply text.",
        code_class="50",
        stages=(Stage.banner, Stage.mail, Stage.rcpt, Stage.data),
        # an X.7.x enhanced code says the refusal is a policy's (RFC 3463 security or policy
        # status), which a 50x basic code does not turn into a syntax error
        # (after a short prefix too: "<username>... 5.7.1 Permission denied")
        unless=r"^[^\n]{0,160}?(?:^|(?<=[\s:<>(\[#]))[45]\.7\.\d{1,3}\b",
    ),
)
