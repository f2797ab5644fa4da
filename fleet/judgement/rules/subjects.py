"""The subject of a refusal, when no cause was recognised: the thing refused decides (a
recipient in a state only a recipient has, a sender, a message at DATA), below every
cause and above the status codes."""

from __future__ import annotations

from fleet.judgement import vocabulary
from fleet.judgement.rule import Rule
from fleet.judgement.rule_ids import RuleId
from fleet.results import Category, Stage

SUBJECTS: tuple[Rule, ...] = (
    # -- the SUBJECT of a refusal, when no cause above was recognised ---------------------
    # Real servers name what they refuse far more consistently than why: "Recipient address
    # rejected", "user not known", "sender was rejected", "message refused". When the words
    # name no cause fleet knows, the thing refused decides (below every cause, above the
    # status codes): a refused recipient is the recipient's, a refused sender the sender's,
    # a refused message the message's. Each rule is a noun of its family within a short
    # window of a word of refusal (bounded: linear on hostile replies).
    Rule(
        # Postfix's "Recipient address rejected: <cause>": the cause after the subject wins
        # when a rule above knows it ("Too many recipients" is a limit, "Greylisted" a
        # deferral); otherwise the subject decides.
        RuleId.subject_recipient_prefix,
        Category.recipient_rejected,
        "the server refuses the recipient (it gives no more specific reason)",
        "The server refuses the test recipient: check the 'to' address (it may not exist, be "
        "disabled or refuse this sender), and that {host} receives mail for its domain.",
        text=rf"recipient address(?:es)? {vocabulary.REJECTED}",
        stages=(Stage.rcpt, Stage.data),
        # "... rejected for policy reasons" names no cause (#16: unrecognised), nor does a
        # policy server's bare "Not authorized"
        unless=r"\bsender\b|"
        + vocabulary.MAIL_FROM
        + rf"|{vocabulary.REJECTED} for policy reasons|"
        + vocabulary.BARE_POLICY_VERDICT,
    ),
    Rule(
        # The same for "Sender address rejected: <cause>".
        RuleId.subject_sender_prefix,
        Category.sender_rejected,
        "the server refuses the sender address {sender} (it gives no more specific reason)",
        "The server refuses {sender} as a sender: use an address in a domain the server "
        "accepts mail from (usually the login mailbox or an accepted domain).",
        text=rf"sender address(?:es)? {vocabulary.REJECTED}",
        stages=(Stage.mail, Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.subject_recipient_domain,
        Category.recipient_rejected,
        "the server refuses the recipient: its domain does not exist or takes no mail",
        "The recipient's domain does not resolve or does not take mail: check the 'to' "
        "address's domain (a typo, an expired domain) and its MX records.",
        text=vocabulary.DOMAIN_UNKNOWN,
        stages=(Stage.rcpt, Stage.data),
        unless=vocabulary.NOT_THE_RECIPIENT,
    ),
    Rule(
        RuleId.subject_sender_domain,
        Category.sender_rejected,
        "the server refuses the sender {sender}: its domain does not exist or takes no mail",
        "The domain of {sender} does not resolve or takes no mail, so receivers refuse it as "
        "a sender: send from an address in a domain with working DNS (an MX or A record).",
        text=vocabulary.DOMAIN_UNKNOWN,
        stages=(Stage.mail,),
    ),
    Rule(
        RuleId.subject_sender,
        Category.sender_rejected,
        "the server refuses the sender address {sender} (it gives no more specific reason)",
        "The server refuses {sender} as a sender without saying why: use an address in a "
        "domain the server accepts mail from (usually the login mailbox or an accepted "
        "domain), and check that domain's DNS and SPF.",
        text=vocabulary.SENDER_SUBJECT,
        stages=(Stage.mail, Stage.rcpt, Stage.data),
    ),
    Rule(
        # At MAIL FROM the only address on the table is the sender's.
        RuleId.subject_address_at_mail,
        Category.sender_rejected,
        "the server refuses the sender address {sender} (it gives no more specific reason)",
        "The server refuses {sender} as a sender without saying why: use an address in a "
        "domain the server accepts mail from (usually the login mailbox or an accepted "
        "domain), and check that domain's DNS and SPF.",
        # (an address, user or mailbox refused at MAIL FROM: "User unknown" is the sender's)
        # ... and an address said not to exist, the noun left out ("does not exist E2110",
        # sisimai's Rejected.pm)
        text=vocabulary.ADDRESS_REFUSED
        + "|"
        + vocabulary.RECIPIENT_SUBJECT
        + r"|\b(?:does not|do not|no) exist\b|\bnon-?existent\b",
        stages=(Stage.mail,),
        unless=r"\bIP\b|client|host|server|connection",
    ),
    Rule(
        RuleId.subject_recipient,
        Category.recipient_rejected,
        "the server refuses the recipient (it gives no more specific reason)",
        "The server refuses the test recipient without saying why: check the 'to' address "
        "(it may not exist, be disabled or refuse this sender), and that {host} receives "
        "mail for its domain.",
        text=vocabulary.RECIPIENT_SUBJECT + "|" + vocabulary.ADDRESS_STATE,
        stages=(Stage.rcpt, Stage.data),
        unless=vocabulary.NOT_THE_RECIPIENT,
    ),
    Rule(
        RuleId.subject_message,
        Category.message_rejected,
        "the server refuses the message (it gives no more specific reason)",
        "The receiver refused the test message itself: read the reply; try a small scan "
        "with a plain subject and a PDF attachment, and ask the administrator of {host} "
        "which filter refused it.",
        text=vocabulary.MESSAGE_SUBJECT,
        stages=(Stage.data,),
        code_class="5",  # a 4xx "temporarily rejected this message" is a deferral
        unless=r"\bIP\b|your (?:host|server|network)|relay|authenticat|log ?in|"
        r"destination domain|delivery not authori[sz]ed",
    ),
)
