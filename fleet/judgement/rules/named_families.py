"""Families of causes that servers name in many wordings: limits (rate, concurrency, session,
daily), spam verdicts on the message, bans of an IP or a domain, the sender's identity, a
recipient's state, protocol misuse and AUTH switched off. Read right after the receiver's own
faults, so a named cause beats the generic words (4.5.3, 4.4.5, "temporary", 5.5.4, "Recipient
address rejected:") around it. Every window is bounded: linear on hostile replies."""

from __future__ import annotations

from fleet.judgement import remedies, vocabulary
from fleet.judgement.rule import Rule
from fleet.judgement.rule_ids import RuleId
from fleet.results import Category, Stage

# Words about an address's syntax (RFC 5321 4.1.2 Mailbox): a missing "@" or domain, a
# malformed or unqualified address. Not "Syntax: MAIL FROM:<address>", which is the command's.
_ADDRESS_SYNTAX = (
    r"[\"']@[\"'] or [\"']\.[\"'] expected|"
    r"\baddress\b(?:[^.;:!]|\.(?=\w)){0,30}?\b(?:must (?:contain|have|include) (?:an? )?"
    r"(?:domain|@|at-sign)|must be fully[- ]qualified|(?:is )?missing (?:an? |the )?(?:domain|@|"
    r"at-sign|local[- ]part))|"
    r"\b(?:missing|no) (?:domain|@|at-sign|local[- ]part) (?:in|for) (?:the )?(?:e-?mail )?"
    r"address\b|\b(?:malformed|unparseable|unparsable) (?:e-?mail )?address\b|"
    r"\b(?:e-?mail )?address syntax (?:error|is invalid|invalid)\b|\bsyntax error in (?:the )?"
    r"(?:e-?mail |sender |recipient )?address\b|\baddress (?:is )?(?:malformed|unparseable|unparsable)\b|"
    # sendmail's parser: "553 5.1.3 <x... Unbalanced '<'"
    r"\bunbalanced ['\"]?(?:<|>|angle)"
)

# what is counted when a server limits a sender
_COUNTED = (
    r"(?:concurren\w*|connections?|connects?|sessions?|logins?|recipients?|rcpts?|messages?|"
    r"mails?|e-?mails?|sending|rate|daily|hourly|per[- ](?:hour|day|minute|session|connection|"
    r"message))"
)
_COUNTED_PLURAL = r"(?:sessions|connections|connects|logins|messages|recipients|mails|e-?mails)"
# an IP address, or one masked as documentation does ("xxx.xxx.xxx.xxx")
_IP = (
    r"\[?(?:(?:\d{1,3}|x{1,3})(?:\.(?:\d{1,3}|x{1,3})){3}|[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7})\]?"
)
_BANNED = (
    r"(?:is |has been |was |got |ist |wurde |est |a été |está |ha sido )?(?:temporarily |"
    r"permanently )?(?:banned|black ?listed|block ?listed|gesperrt|bann(?:ie|ed)|bloqu[ée]e?|"
    r"заблокирован\w*|"
    r"bloquead[oa])\b"
)
# a ban that names a public list is that list's listing: its own rules name the list to delist from
_NAMES_A_LIST = (
    r"\busing\b|\blisted\b|spamhaus|spamcop|barracuda|sorbs|uceprotect|mailspike|psbl|surbl|"
    r"uribl|\bRBL|DNSBL|\bDBL\b"
)

NAMED_FAMILIES: tuple[Rule, ...] = (
    # -- greylisting: a 4xx that says it greylists is a deferral, whatever list it names ----
    Rule(
        RuleId.smtp_greylisted,
        Category.temporary_failure,
        "the server greylists: it defers a first attempt from an unknown source",
        "The server greylists ({host} defers mail from a source it has not seen before): a "
        "copier that retries after a few minutes gets through; fleet tries once, so run the "
        "site again later. Nothing is wrong with the site.",
        # (read before every listing: "blocked using grey.rbl ... Greylisting in action" is a
        # deferral, never the IP's reputation)
        text=r"gr[ae]y ?list",
        code_class="4",
    ),
    # -- a mailbox busy or locked for now (4xx): the receiver's temporary state, not the
    # recipient's address (RFC 3463 X.2.1 "mailbox disabled, not accepting messages" as 4.2.1)
    Rule(
        RuleId.mailbox_busy_deferral,
        Category.temporary_failure,
        "the recipient's mailbox is busy or locked for now (a deferral)",
        "{host} deferred because the recipient's mailbox is busy or locked for the moment: run "
        "the site again later; if it persists, ask the administrator of {host}.",
        text=r"\b(?:mail ?box|recipient|user|account|folder)\b(?:[^.;:]|\.(?=\w)){0,20}?\b(?:is )?"
        r"(?:temporarily |currently )?(?:busy|locked|in use)\b",
        code_class="4",
        unless=rf"permanent|MaxObjs|quota|\bfull\b|storage|{vocabulary.TOO_MANY}|limit|\brate\b|too (?:quickly|fast)",
    ),
    # -- sender verification (a callout to the sender's domain) failed: the sender's -------
    # (Exim "Verification failed for <a> ... Sender verify failed", Postal "<a> unable to
    # verify address", sisimai's Rejected: "sender verify failed", "unverifiable sender")
    Rule(
        RuleId.sender_verification_failed,
        Category.sender_rejected,
        "the server could not verify the sender address {sender}",
        "The receiver checks that the sender address exists (a callout to its domain) and "
        "{sender} failed: use a sender address that really receives mail, in a domain whose "
        "MX accepts it.",
        text=r"\bsender (?:address )?verif\w* (?:failed|failure|error)|\bverification failed "
        r"for <?[^\s@<>]{1,64}@|\bcould not (?:complete )?sender verif\w*|\bunverifiable (?:sender|address)|"
        r"\b(?:unable|could not|cannot|can ?not|failed) to verify (?:the |your )?(?:sender|"
        r"(?:e-?mail )?address|from)\b|\bsender (?:address )?(?:could not|cannot|can ?not) be "
        r"verified\b|\bverif\w* (?:of )?(?:the )?(?:sender|mail ?from|envelope)\w*(?: address)? "
        r"(?:failed|failure)",
        stages=(Stage.mail, Stage.rcpt, Stage.data),
        # (and "unable to verify address at this time", Stalwart's 4.4.3: the check could not
        # run now, smtp.own_check_deferred)
        unless=r"\brecipients?\b|\brcpt\b|\bat this time\b|\bcould not complete\b",
    ),
    # -- the message waited too long somewhere (RFC 3463 X.4.7 "delivery time expired",
    # Microsoft's 4.4.7 / 5.4.300 "Message expired"): time, not a verdict on the message
    Rule(
        RuleId.delivery_expired,
        Category.temporary_failure,
        "the message expired on its way (delivery time exceeded)",
        "The message waited too long on the way to {host} and expired: run the site again; "
        "if it recurs, look for a relay or queue between the copier and {host} that holds mail.",
        text=r"\b(?:message|delivery|mail)\b(?:[^.;]|\.(?=\w)){0,20}?\b(?:has )?(?:expired|timed? ?out)\b|"
        r"\bdelivery time expired\b|^\s*[45]\.4\.7\b",
        unless=r"\bpassword|\bcertificate|\baccount|\bsession",
    ),
    # -- a command at the wrong point of the session: a protocol matter, even when the
    # command is HELO ("wrong state for HELO command")
    Rule(
        RuleId.smtp_wrong_state,
        Category.protocol_error,
        "the server refuses a command at this point of the session",
        "{endpoint} refused a command as out of place in the session: an SMTP-inspecting "
        "firewall between the site and {host} can cause this; turn off its SMTP inspection, "
        "else tell the server's administrator, with the reply text.",
        text=r"\b(?:wrong|bad|invalid|improper|incorrect|illegal) (?:session )?state\b|"
        r"\bnot (?:allowed|valid|permitted|possible) (?:in|at) this (?:state|point|stage)\b|"
        r"\bout of (?:sequence|order)\b|"
        # a command sent before the server greeted ("Command received before SMTP greeting")
        r"\b(?:commands?|data|input) (?:received |sent )?before (?:the )?(?:smtp )?(?:greeting|"
        r"banner)\b|"
        # ... in other words (qpsmtpd's early talker "Connecting host started transmitting
        # before SMTP greeting", Postfix postscreen's "PREGREET"; "talking too soon")
        r"\b(?:transmitt\w*|talk\w*|sen(?:t|ding)|spoke|speaking|writing)\b(?:[^.;]|\.(?=\w)){0,20}?"
        r"\bbefore (?:the |my |our )?(?:smtp )?(?:greeting|banner|welcome)\b|\bpregreet\b|"
        r"\btalk(?:ed|ing)? too soon\b|"
        # ... Postfix postscreen's own reply to it ("Error: I can break rules, too. Goodbye.")
        r"\bI can break (?:the )?rules,? too\b|"
        # AUTH inside a mail transaction (qmail-smtpd-auth "no auth during mail transaction",
        # Postfix "Error: MAIL transaction in progress")
        r"\bauth\w*(?: is)?(?: not (?:allowed|permitted))? (?:during|in|inside) (?:a |the )?mail "
        r"transaction\b|"
        r"\bmail transaction (?:is )?(?:already )?in progress\b|"
        # commands pipelined after STARTTLS, or STARTTLS again once TLS is up (mailfront's
        # "Unexpected pipelined commands following STARTTLS", NetEase's "Command not
        # permitted when TLS active", Postfix "Error: TLS already active")
        r"\bpipelin\w* (?:commands? |input )?(?:after|following|with) (?:the )?STARTTLS\b|"
        r"\b(?:when|while|once) TLS (?:is )?(?:already )?active\b|\bTLS (?:is |was )?already "
        r"(?:active|started|in (?:use|effect|progress)|negotiated)\b|"
        # ... in other words (mox "already speaking tls", "cannot starttls after
        # authentication"; chasquid's "You are already wearing that!")
        r"\balready (?:speaking|using|running) (?:tls|ssl)\b|\b(?:cannot|can ?not|no) starttls "
        r"(?:after|during|once)\b|\balready wearing that\b|"
        # an extension the client did not declare first (mox "message with non-us-ascii
        # requires 8bitmime extension"); an HTTP request sent to the SMTP port (chasquid's
        # "You hear someone cursing shoplifters")
        r"\brequires (?:the )?8-?bit-?mime\b|\b8-?bit-?mime (?:extension )?(?:is )?required\b|"
        r"\bcursing shoplifters\b|"
        # the command the server waited for, named (Stalwart "Invalid command: EHLO expected.",
        # "RCPT command expected")
        r"\b(?:EHLO|HELO|LHLO|MAIL|RCPT|DATA)(?: command)? expected\b|"
        # a command masked by a firewall's SMTP inspection (Cisco PIX/ASA: "'XXXXXXXX': command
        # not understood")
        r"(?-i:\bX{4,}\b)'?:? (?:command )?(?:not understood|unrecogni[sz]ed|not recogni[sz]ed|"
        r"unknown)",
    ),
    # -- a count of the client's mistakes is the mistakes' family, not a rate to wait out:
    # bad commands are the protocol's (Cisco "Exceeded bad SMTP command limit"), failed logins
    # the login's (mox "too many auth failures")
    Rule(
        RuleId.smtp_bad_commands_counted,
        Category.protocol_error,
        "the server counts this client's bad commands and stopped the session",
        "{endpoint} ended the session after too many commands it did not accept: an "
        "SMTP-inspecting firewall between the site and {host} can cause this; turn off its SMTP "
        "inspection, else tell the server's administrator, with the reply text.",
        text=r"\b(?:bad|invalid|unknown|unrecogni[sz]ed|illegal) (?:smtp )?commands? "
        rf"(?:limit|count|threshold)\b|\b{vocabulary.TOO_MANY} (?:bad|invalid|unknown|"
        r"unrecogni[sz]ed|illegal) (?:smtp )?commands\b",
    ),
    Rule(
        RuleId.auth_failures_counted,
        Category.auth_failed,
        "the server refuses this client after too many failed logins",
        "The server counts failed logins from this site and now refuses it: correct the "
        "username and password of {mailbox} on every copier of the site (one wrong copier "
        "locks out the others), then wait for the block to expire.",
        text=rf"\b{vocabulary.TOO_MANY} (?:failed )?(?:auth\w*|login|sign-?in) (?:failures|"
        rf"failed attempts|errors|attempts failed)\b|\b{vocabulary.TOO_MANY} failed "
        r"(?:auth\w*|logins?|login attempts|sign-?ins?)\b|"
        # NetEase "too much fail authentication"; "too many authentication failures" above
        rf"\b(?:{vocabulary.TOO_MANY}|too much) fail(?:ed|ures?)? (?:auth\w*|logins?|sign-?ins?)\b|"
        # ... the errors counted (Coremail/eYou "IP is Hangup, too much auth error")
        rf"\b(?:{vocabulary.TOO_MANY}|too much) (?:auth\w*|login) (?:errors?|failures?)\b",
        # (an IP listed or banned for them is the IP's standing: its rules decide)
        unless=r"black ?list|block ?list|\blisted\b|\bbanned\b|\bIP\b(?!(?: is)? hang ?up\b)",
    ),
    # -- a deferral because a DNS lookup (DMARC, MX, SPF) did not answer in time: RFC 3463
    # X.4.x is the network's or routing's state, and a 4xx says to try again (Rackspace
    # "4.4.0 Temporary DMARC DNS lookup failure", mox "4.4.0 cannot verify mx records")
    Rule(
        RuleId.dns_lookup_deferred,
        Category.temporary_failure,
        "the receiver deferred: a DNS lookup it needed did not answer in time",
        "{host} could not complete a DNS lookup (the sender domain's MX, SPF or DMARC) and "
        "deferred: run the site again later; if it persists, check that the sender's domain "
        "answers DNS queries from the internet.",
        enhanced=("4.4.0-4.4.7",),
        text=r"\bDNS\b|\bMX\b|look ?up|\bresolv\w*",
        code_class="4",
        # (the client IP's own name is reverse DNS, which the site fixes: its rules decide)
        unless=r"\bPTR\b|reverse|\brdns\b|\bIP\b|client|host ?name",
    ),
    # -- a sender check (SPF, DKIM, DMARC, ARC, a TXT lookup) that hit a temporary DNS error:
    # RFC 7208 8.6's "temperror" (451 4.4.3), the receiver's or the domain's DNS not answering
    # now, not a verdict on the sender (Stalwart "4.7.24 Temporary SPF validation error.",
    # haraka-plugin-spf "SPF Temporary Error", forwardemail "queryTxt ESERVFAIL")
    Rule(
        RuleId.dns_check_temperror,
        Category.temporary_failure,
        "the receiver deferred: a sender check it runs (SPF, DKIM, DMARC) hit a temporary DNS "
        "error",
        "{host} could not finish a DNS lookup for its sender checks (SPF, DKIM or DMARC of the "
        "sender's domain) and deferred: run the site again later; if it persists, check that "
        "the sender domain's DNS answers queries from the internet.",
        text=r"\btemp ?error\b|\b(?:e?servfail|etimeout|eai_again)\b|"
        r"\btemporar(?:y|ily)\b(?:[^.;:!]|\.(?=\w)){0,30}?\b(?:SPF|DKIM|DMARC|ARC|DNS|TXT)\b"
        r"(?:[^.;:!]|\.(?=\w)){0,30}?\b(?:errors?|failures?|failed|unavailable|look ?up|check|"
        # (maddy's "4.7.20 Temporary error during DKIM verification")
        r"verification|validation)\b|"
        r"\b(?:SPF|DKIM|DMARC|ARC)\b(?:[^.;:!]|\.(?=\w)){0,30}?\btemporar(?:y|ily) "
        r"(?:errors?|failures?|failed|unavailable)\b",
        # (the client IP's own name is reverse DNS, which the site fixes: its rules decide;
        # Gmail's 4.7.26 "Unauthenticated email ... not accepted due to domain's DMARC policy,
        # but temporary DNS failures prevent authentication" asks the sender domain to fix it)
        unless=r"\bPTR\b|reverse|\brdns\b|\bunauthenticated (?:e-?mail|mail|messages?)\b",
    ),
    # -- ... or a sender check that could not run, in a 4xx (Cisco's "#4.7.1 Unable to perform
    # DMARC verification."); a 5xx so worded goes on to give its verdict ("550 5.7.1 Unable to
    # perform DMARC verification: message fails DMARC policy"): the sender's rules decide
    Rule(
        RuleId.dns_check_not_run,
        Category.temporary_failure,
        "the receiver deferred: a sender check it runs (SPF, DKIM, DMARC) could not run",
        "{host} could not run its sender checks (SPF, DKIM or DMARC of the sender's domain) "
        "and deferred: run the site again later; if it persists, check that the sender "
        "domain's DNS answers queries from the internet.",
        text=r"\b(?:unable to|could not|cannot|can ?not|failed to) (?:perform|complete|run|do) "
        r"(?:the |a |an )?(?:SPF|DKIM|DMARC|ARC) (?:verification|validation|check|evaluation|"
        r"lookup)\b",
        code_class="4",
        unless=r"\bPTR\b|reverse|\brdns\b",
    ),
    # -- a 4xx that says the receiver's own check could not run now: its virus scanner or
    # filter failed or is not ready (Mailu "Please retry later (anti-virus/oletools not
    # ready)", OpenSMTPD "Virus filter failed", amavisd-new "virus_scan FAILED"), or it could
    # not verify an address at this time (Stalwart): a deferral, not a verdict on the message
    Rule(
        RuleId.smtp_own_check_deferred,
        Category.temporary_failure,
        "the receiver deferred: a check of its own (a virus scan, a filter, an address "
        "verification) could not run",
        "{host} could not run one of its own checks (a virus scanner or filter, an address "
        "verification) and deferred: run the site again later; if it persists, tell the "
        "administrator of {host}.",
        text=r"\b(?:anti-?virus|virus[ _](?:filter|scan(?:ner)?|check(?:er)?)|(?:spam|content|mail) "
        r"(?:filter|scanner))\b[^.;]{0,40}?\b(?:failed|failure|not ready|unavailable|"
        r"not available|timed? ?out)\b|"
        r"\b(?:unable to|could not|cannot) verify\b[^.;]{0,60}?\b(?:at this time|right now|"
        r"at the moment|temporarily)\b"
        # ... or could not complete, in other words (Exim's 451 "Could not complete sender
        # verify", qmail rcptcheck's 421 "unable to verify recipient (#4.3.0)"; a 4xx only)
        r"|\b(?:could not|cannot|can ?not|unable to|failed to) (?:complete|perform|finish|run) "
        r"(?:the |a |an )?(?:sender |recipient |address )?(?:verif\w*|callout)\b|"
        r"\b(?:unable to|could not|cannot|can ?not) verify (?:the )?(?:sender|recipient)\b",
        # ... but a filter that rejected or found something gave a verdict ("Rejected by spam
        # filter: SPF check failed", "Spam filter detected spam, delivery failed")
        # (... and one that says what it found: "Unable to verify recipient: user unknown")
        unless=r"\b(?:rejected|refused) by\b|\bdetected\b|\bfound\b|\bSPF\b|DKIM|DMARC|"
        r"\bunknown\b|\bno such\b|\bdoes not exist\b",
        code_class="4",
    ),
    # -- a deferral the receiver's policy asked for in so many words, whatever the wrapper
    # names (Postfix's defer_if_permit / defer_if_reject actions: "Recipient address rejected:
    # defer_if_permit requested"): nothing about the recipient or the sender yet
    Rule(
        RuleId.smtp_policy_deferral,
        Category.temporary_failure,
        "the receiver's policy deferred this client for now (no reason given)",
        "{host} deferred the site by a policy of its own without saying why: run the site "
        "again later; if it persists, ask the administrator of {host}, with the reply text.",
        text=r"\bdefer(?:_if_(?:permit|reject))? requested\b",
        code_class="4",
    ),
    # -- a failure the receiver itself calls transient, whatever its code (Microsoft's 550
    # "Transient Failure during recipients lookup AmbiguousRecipientTransientException"): its
    # own passing state, not the recipient's ("Dialup/transient IP" is the site's IP: its rules)
    Rule(
        RuleId.smtp_transient_failure_named,
        Category.temporary_failure,
        "the receiver reports a transient failure of its own",
        "{host} reported a transient failure of its own: run the site again later; if it "
        "persists, tell the administrator of {host}, with the reply text.",
        text=r"\btransient (?:failure|error|exception|problem)\b|\w+TransientException\b",
        unless=r"\bIP\b|dial-?up",
    ),
    # -- the session's own timer ran out ("5.5.0 Error: transaction timeout", go-guerrilla):
    # time, not a verdict on the site; the 4xx ones already read as temporary by their code
    Rule(
        RuleId.smtp_session_timeout,
        Category.temporary_failure,
        "the server ended the transaction: one of its timers ran out",
        "{host} gave up waiting during the transaction (a slow link, or an SMTP-inspecting "
        "firewall holding the data): run the site again; if it repeats, check the site's "
        "uplink and turn off any firewall's SMTP inspection.",
        text=r"\b(?:transaction|session|connection|command|idle|data|read|smtp) time ?out\b|"
        r"\btime ?out (?:exceeded|waiting|while|reading)\b|\btimed out waiting\b",
        unless=r"\b(?:dns|helo|ehlo|ptr|lookup)\b",
    ),
    # -- an attachment refused for its file type: the message's, whatever list word it uses
    # (iridis "MSG-EXT: Blacklisted high risk file extension detected", Rspamd's
    # "Matched map: FORBIDDEN_FILE_EXTENSION")
    Rule(
        RuleId.message_file_type,
        Category.message_rejected,
        "the receiver refuses an attachment of the message for its file type",
        "The receiver refuses the type of a file attached to the test message: scan to PDF "
        "(not an archive or an executable type), and ask the administrator of {host} which "
        "file types it accepts.",
        text=r"(?<![a-z])(?:high[ _-]risk|forbidden|banned|prohibited|blocked|dangerous|"
        r"disallowed|unsafe|executable|black ?listed)[ _-](?:file|attachment)[ _-]?(?:extension|"
        r"type|name)?s?(?![a-z])|(?<![a-z])(?:file|attachment)[ _-](?:extension|type)s?[ _-](?:is |are )?"
        r"(?:not allowed|forbidden|blocked|prohibited|banned|not permitted)",
        stages=(Stage.data,),
    ),
    # -- limits: whatever is counted, "limit reached", "exceeds the maximum", "too frequent" --
    Rule(
        RuleId.limit_named,
        Category.throttled,
        "the server says this site reached one of its limits (rate, concurrency, session or "
        "daily count)",
        "The server limits how much or how often this site sends ({ip}): reduce how many "
        "devices send at once and how often, or wait and try again later; for a daily limit, "
        "spread the sending over more mailboxes or use a relay sized for the volume.",
        text=rf"\b{_COUNTED} (?:[\w-]+ ){{0,2}}(?:limit|rate) (?:has been |was |is )?"
        r"(?:reached|exceeded|hit)\b|"
        # a quota is the sender's only when sending is counted ("Mail quota exceeded" at RCPT is
        # the recipient's mailbox)
        # ... the other way round: "You've reached your daily relay quota" (sisimai)
        r"\b(?:reached|exceeded|hit|over) (?:your |the |its |our )?(?:daily|hourly|sending|send|"
        r"relay|message|rate|outgoing|outbound)\b(?: [\w-]+){0,2} (?:quota|limit)\b|"
        r"\b(?:daily|hourly|sending|send|outgoing|outbound|submission|messages?|rate) "
        r"(?:[\w-]+ ){0,2}quota (?:has been |was |is )?(?:reached|exceeded|hit)\b|"
        rf"\b(?:exceed\w*|reached) (?:the |your |its |an? )?(?:[\w-]+ ){{0,2}}{_COUNTED} limit\b|"
        r"\bat (?:the |its )?max(?:imum)? (?:[\w-]+ ){0,2}limit\b|"
        rf"\b(?:number|count) of {_COUNTED_PLURAL}\b[^.;]{{0,40}}?\b(?:exceed\w*|reached) (?:the )?(?:allowed |permitted |configured )?max|"
        rf"\b(?:exceed\w*|over|above|reached) (?:the |your )?max(?:imum|\.)? "
        rf"(?:(?:number|count|amount) of )?{_COUNTED_PLURAL}|"
        r"\b(?:too (?:frequent|many)|excessive) (?:smtp |simultaneous |concurrent |parallel )?(?:connects|"
        r"connections|sessions|logins|concurrent\w*|simultaneous\w*|parallel|errors\b|"
        r"(?:recipient|rcpt|connection|delivery) attempts|(?:RCPT|MAIL) commands)|"
        r"\b(?:sending|send\w*|connect\w*|messages?|mails?) too (?:fast|quickly|often|"
        r"frequently)\b|\b(?:sending |send |message |connection )?rate (?:is )?too high\b|"
        r"\brate[- ]?limit(?:ed|ing)\b|"
        rf"\b{_COUNTED_PLURAL} (?:are |is )?too frequent|"
        rf"\bmax(?:imum|\.)? (?:(?:number|count) of )?{_COUNTED_PLURAL}\b[^.;]{{0,40}}?"
        rf"\b{vocabulary.EXCEEDED}\b|"
        r"\bmax(?:imum|\.)? (?:concurrent|simultaneous|parallel) (?:sessions|connections)\b|"
        rf"\b{vocabulary.TOO_MANY} (?:invalid|unknown|bad|non-?existent) (?:recipients|rcpts|addresses|users)\b|"
        # a limit in other words: "restricted due to heavy usage", "out of allow RCPT numbers",
        # "received too much email in a short period", "limit of 400 rcpts per 24 hours",
        # "exceeded the quota for sending messages"
        r"\b(?:restricted|limited|blocked|suspended) (?:due to|for|because of) (?:heavy|high|"
        r"excessive|unusual) (?:usage|use|volume|traffic|load)\b|"
        rf"\bout of (?:the )?allow(?:ed)? (?:[\w-]+ )?{_COUNTED} ?(?:numbers?|count|quota)\b|"
        r"\breceived too (?:much|many) (?:e-?mails?|mails?|messages?) in a short (?:period|time)\b|"
        # a limit on this client in other words: cPanel's Exim "The server has reached its
        # limit for processing requests from your host", Stalwart's "Session open for too
        # long", iRedAPD's "Throttling quota exceeded", Zoho's 5.4.6 "Unusual sending activity"
        r"\blimit for (?:processing |handling |accepting )?(?:requests|connections|messages|mails?|"
        r"sessions) from (?:your|this) (?:host|ip|server|client|network|address)\b|"
        r"\b(?:session|connection) (?:has been |was |is )?open (?:for )?too long\b|"
        r"\bthrottl\w* (?:quota|limit) (?:has been |was |is )?(?:exceeded|reached|hit)\b|"
        # Postfix's smtpd_client_new_tls_session_rate_limit ("454 4.7.0 Error: too many new
        # TLS sessions from <client>")
        rf"\b{vocabulary.TOO_MANY} (?:new )?TLS (?:sessions|handshakes|negotiations)\b|"
        r"\bunusual (?:sending|outgoing|outbound) activity\b|"
        rf"\blimit of \d+ {_COUNTED}\b|"
        r"\b(?:exceed\w*|reached|over) (?:the |your |its )?quota (?:for|on) (?:sending|send\w*|"
        r"outgoing|outbound)\b|"
        r"\btrop de (?:connexions|messages|mails|destinataires)|\bzu viele (?:verbindungen|"
        r"sitzungen|nachrichten|e-?mails|empf(?:ä|ae)nger)|\bdemasiad[oa]s (?:conexiones|mensajes|"
        r"correos|destinatarios)|"
        # Portuguese (Zimbra's policy daemon: "Limite de envio para o gmail foi excedido")
        r"\blimite de envio\b|\b(?:limite|cota) (?:[^.;]){0,40}\bexcedid[oa]\b|"
        # ... and in other words (holdout13/14, judge12): AliMail's "the number of RCPT
        # attempts is achieved the maximum threshold", "too many same size mails.", "Since you
        # sent too many e-mails, you are not allowed to send more", Sophos's "5.7.28 Mail flood
        # detected" (RFC 3463's X.7.28 "mail flood detection"), "max messages per session"
        r"\b(?:attempts|connections|messages|mails|recipients|rcpts?)\b[^.;]{0,40}?\b(?:achieved|reached|hit|exceeded) (?:the |its )?max(?:imum)? threshold\b|"
        rf"\b{vocabulary.TOO_MANY} (?:similar|identical|same[- ]size|same) (?:e-?mails?|mails?|"
        r"messages?)\b|"
        rf"\b(?:sent|sending|send) {vocabulary.TOO_MANY} (?:e-?mails?|mails?|messages?)\b|"
        r"\bmail ?flood\w*|\bflood(?:ing)? detected\b|"
        r"\bmax(?:imum|\.)? (?:messages|mails|e-?mails|recipients|rcpts) per (?:session|"
        r"connection|hour|day)\b|\bbulk (?:mail(?:ing)? )?policy violation\b",
        # a message's size, a mailbox's storage, a line's length are not limits on the sender
        # (a mailbox that "received too much email in a short period" is flooded, not full;
        # in Portuguese: "tamanho", "armazenamento", "caixa postal")
        unless=r"(?<!same )\bsize\b|\bbytes?\b|too (?:big|large)|storage|\bdisk\b|mail ?box(?! received too)|inbox|"
        r"tamanho|armazenamento|caixa (?:postal|de correio|de entrada)|"
        r"over ?quota|\blength\b|header|\bline\b|time ?out|time limit|^\s*[45]\.2\.2\b|"
        # a limit imposed for a cause names the cause to fix (Gmail's 4.7.40 "rate limited
        # because the sending domain doesn't have a DMARC record")
        # (a count of new TLS sessions is a limit like any other: Postfix's TLS session rate)
        r"reputation|unsolicited|untrusted|DMARC|\bSPF\b|DKIM|\bTLS\b(?! (?:sessions|handshakes|"
        r"negotiations))|\bPTR\b|reverse DNS|"
        # the IP blocked for what it did (GoDaddy IB112): its standing, not a limit to wait out
        r"\bIP (?:address )?(?:has been |is |was )?(?:temporarily |permanently )?(?:blocked|banned)\b",
    ),
    # -- a spam verdict on the message (at DATA; a listing of the IP is not one) ------------
    Rule(
        RuleId.data_spam_verdict,
        Category.message_rejected,
        "the receiver's spam filter refused the message",
        "The receiver's spam filter refused the test message itself: try a small scan with a "
        "plain subject and body; if it persists, ask the administrator of {host} which filter "
        "rule refused it, and check the sender's SPF and DKIM.",
        text=r"\bunsafe content\b|\bspamm(?:ing|ed|y)\b|\bspam (?:pattern|contents?|score|signature|detected|"
        r"verdict|rules?|check)|\bblocked as spam\b|\b(?:detected|identified|classified|marked|"
        r"flagged|considered|recogni[sz]ed) as (?:spam|junk|bulk)\b|\banti-?spam (?:checks?|"
        r"filters?|engine|system|polic\w*)|(?-i:\b[A-Z]{2}:SPM\b)|\bpolicy violation detected\b|"
        r"\b(?:spam|content|mail|message) ?scor(?:e|ing)\b|\bjunk (?:mail|e-?mail|message)|(?-i:\bU[BC]E\b)|"
        r"\b(?:black ?listed|banned|prohibited|forbidden) (?:words?|phrases?|terms?|expressions?)\b",
        stages=(Stage.data,),
        unless=r"\blisted\b|block ?list|black ?list(?!ed (?:words?|phrases?|terms?|expressions?)\b)|"
        r"\bRBL|DNSBL|reputation|spamhaus|"
        r"from your (?:IP|mail ?server|server|network)",
    ),
    # -- banned: an IP or a domain named as banned -----------------------------------------
    Rule(
        RuleId.ip_banned,
        Category.ip_reputation,
        "the receiver has banned the site's IP {ip}",
        "The receiver bans {ip}: find what sent unwanted mail from it and stop it, then ask the "
        "administrator of {host} to lift the ban; meanwhile send through authenticated "
        "submission on {submission} or a relay with a clean IP.",
        text=rf"\b(?:sender|client|host|server|IP(?: address|-Adresse)?|connection|address|source|"
        rf"adresse IP|direcci[óo]n IP)\b:? "
        rf"{_IP}:? {_BANNED}|\bIP(?: address)?\b[^.;]{{0,40}}?\b{_BANNED}|"
        r"\bbanned (?:IP|host|client|sender IP)\b|"
        # Aruba's "Indirizzo IP bloccato temporaneamente per sospetto abuso"; Hanafos's "Your
        # IP(192.0.2.1) is filtered ... You must register your IP"
        r"\bindirizzo IP\b[^.;]{0,40}?\bbloccat[oa]\b|\byour IP\b(?:[^.;]|\.(?=\w)){0,40}?\bis filtered\b|"
        # every message from the address refused for good ("[TS03] All messages from
        # 192.0.2.1 permanently deferred"): a verdict on the address, whatever the code
        rf"\b(?:messages|mails?|e-?mails?|connections) from {_IP} (?:are |have been )?"
        r"permanently (?:deferred|rejected|refused|blocked)\b|"
        # an intrusion prevention system holding the address ("Intrusion prevention active for
        # [192.0.2.1]")
        r"\bintrusion (?:prevention|detection)(?: system)? (?:is )?(?:active|triggered|engaged) "
        r"(?:for|against) |"
        # an address alone said to be blocked ("HL:IHU 192.0.2.1 has been blocked")
        rf"(?<![\w.@-]){_IP}:? (?:has been |is |was )?(?:temporarily |permanently )?blocked\b(?! (?:using|by)\b)",
        # (a verdict on the PTR name, "your reverse DNS entry contains your IP address and a
        # banned keyword", is fixed by the name, not by the IP's standing: reverse DNS's rules)
        unless=_NAMES_A_LIST
        + r"|reverse[- ]?(?:dns|lookup|name|record|host ?name)|\brdns\b|\bptr\b",
    ),
    Rule(
        RuleId.domain_banned,
        Category.domain_reputation,
        "the receiver has banned a domain of this mail",
        "The receiver bans a domain of this conversation (the sender {sender} or the EHLO name "
        "{ehlo_name}): find why (spam sent in its name, a listed domain), fix it, then ask the "
        "administrator of {host} to lift the ban.",
        text=rf"\b(?:sender |sending |from )?domain\b:? (?:<?[\w.-]{{1,253}}>? )?{_BANNED}|"
        # MailEnable: "rejected due to poor reputation of a domain used in message transfer"
        r"\b(?:poor|bad|low) reputation of (?:an?|the|your) (?:sender'?s? )?domain\b",
        unless=_NAMES_A_LIST,
    ),
    # -- the login account itself may not send: its password expired, its sending switched
    # off (Mail.ru "message sending for this account is disabled", iRedMail "Password expired
    # or never changed, please change your password in webmail"): the account's, at any stage
    Rule(
        RuleId.account_sending_disabled,
        Category.auth_failed,
        "the account {mailbox} may not send (its sending is disabled or its password expired)",
        "The provider refuses to send for the login account {mailbox} itself: sign in to its "
        "webmail to change an expired password or to lift the block, or use another mailbox.",
        text=r"\b(?:message |mail |e-?mail )?sending (?:for|from|by) (?:this|your|the) account\b"
        r"(?:[^.;]|\.(?=\w)){0,20}?\b(?:is |has been )?(?:disabled|suspended|blocked|paused)\b|"
        # Amazon SES "Sending suspended for this account", Postal "Mail server has been
        # suspended" (Postal's "mail server" is the sending organisation's account)
        r"\bsending (?:is |has been )?(?:disabled|suspended|blocked|paused) for (?:this|your|the) "
        r"account\b|\bmail ?server (?:has been |is |was )?(?:suspended|disabled)\b|"
        r"\bpassword (?:has )?(?:expired|never (?:been )?changed)\b|\bchange your password\b|"
        # AliMail "This account isn't allowed to send email"
        r"\bthis account (?:is not|isnt) allowed to send (?:e-?mails?|mails?|messages?)\b",
        unless=r"\bsender\b|\bdomain\b",
    ),
    # -- the sender's identity: the From address, the domain's sending, the account's right --
    Rule(
        RuleId.sender_identity_refused,
        Category.sender_rejected,
        "the receiver refuses the sender's identity (the From address, its domain, or the "
        "account's right to send as it)",
        "The receiver refuses the copier's sender ({sender}) itself: set a valid From address "
        "in a domain you own and send as, one the login mailbox may use; if the provider "
        "paused or did not verify the domain or identity, resolve that in its console.",
        text=r"\b(?:blank|empty|missing|invalid|bad|null) From:? address|"
        r"\bnot allowed as (?:a |the )?From\b|"
        r"\bFrom:? (?:header )?address(?:es)? (?:is |are )?(?:not allowed|invalid|required|missing|not valid)|"
        r"\bvalid From\b|"
        # maddy's submission check "Invalid address in From"
        r"\b(?:invalid|bad|malformed) (?:e-?mail )?address(?:es)? in (?:the )?From\b|"
        r"\bsending (?:from|for|by|as) (?:this|your|the) (?:domain|address|account|sender|"
        r"identity)\b(?:[^.;]|\.(?=\w)){0,20}?\b(?:paused|suspended|disabled|blocked|restricted|not allowed)|"
        r"\bsending (?:is |has been )?(?:paused|suspended|disabled) for (?:this|your|the) "
        r"(?:account|domain|address|identity)\b|"
        r"\b(?:sender|sending) (?:domain|address|identity) (?:is |has been )?(?:paused|"
        r"suspended|disabled)|"
        r"\b(?:domain|address|sender|account)\b(?:[^.;]|\.(?=\w)){0,30}?\b(?:suspended|paused|blocked|"
        r"disabled|banned) from sending\b|"
        r"\bnot (?:authori[sz]ed|allowed|permitted) to send (?:e-?mail |mail )?(?:from|on behalf of) "
        r"(?!(?:this |your |the |that |an? )?(?:[\w-]{1,20} )?(?:IP|host|server|network|country|"
        r"region)\b)|"
        r"\b(?:sender|from)\b[^;]{0,40}?\band (?:the )?(?:login|user ?name|authenticated user|"
        r"auth\w* user)\b[^;]{0,20}?(?:do(?:es)?nt|do(?:es)? not) match|"
        r"\bauthenticated (?:user|account|login|identity)\b[^;]{0,20}?(?:do(?:es)?nt|do(?:es)? "
        r"not) match (?:the )?(?:sender|from|mail from|envelope)|"
        # the envelope's domain against the login's (Haraka "Envelope domain 'x' doesn't match
        # AUTH domain 'y'"), and a sender not the client's own (indimail "this MTA does not
        # accept masquerading/forging")
        r"\b(?:envelope|sender|from|mail ?from) domain\b[^;]{0,80}?(?:do(?:es)?nt|do(?:es)? not) "
        r"match (?:the |your )?(?:auth\w*|login|user) domain\b|\bmasquerad(?:e|ing)\b|"
        r"\bnot authori[sz]ed to perform (?:[\w-]{1,20}:)?Send\w*|\bses:Send\w*|"
        r"\b(?:user ?name|login|authenticated user|auth\w* (?:user|id\w*))\b[^;]{0,80}?\band "
        r"(?:the )?sender (?:address )?(?:do(?:es)?nt|do(?:es)? not|not|mis)-? ?match|"
        r"\bsender (?:address )?(?:do(?:es)?nt|do(?:es)? not) match (?:the )?(?:user ?name|"
        r"login|authenticated)|"
        r"\b(?:sending|sender|from|envelope) address (?:is |was )?(?:not accepted|refused|"
        r"denied|not allowed)\b(?!:)|"
        r"\bdomain (?:name )?(?:is )?required (?:for|in) (?:the )?(?:sender|from|mail from)|"
        r"\bsender (?:address )?(?:must|needs to) (?:contain|include|have) a (?:fully[- ]"
        r"qualified )?domain|"
        # the sender bound to the login in other words (mox "must match authenticated user",
        # iRedMail "Sender is not same as SMTP authenticate username")
        r"\bmust match (?:the )?(?:authenticat\w*|login|logged[- ]in|sasl) (?:user ?name|user|"
        r"account|identity|login)\b|\bsender\b(?:[^.;]|\.(?=\w)){0,20}?\bnot (?:the )?same as "
        r"(?:the )?(?:smtp |sasl )?(?:authenticat\w*|auth|login)(?: user ?name| user| account| "
        r"login| identity)?\b|"
        # the empty sender, refused as such ("Policy rejection due to null sender")
        r"\b(?:due to|for|because of) (?:an? |the )?(?:null|empty|blank) sender\b|\b(?:null|empty|"
        r"blank) senders? (?:address(?:es)? )?(?:is |are )?(?:temporarily )?(?:not (?:allowed|"
        r"accepted|permitted)|rejected|refused|denied)|"
        # qmail's authtlsvariables patch: "from and auth not the same"
        r"\b(?:from|sender|mail ?from) and (?:the )?auth\w*(?: user)? (?:are )?not the same\b|"
        # unsolicited mail counted against the sender's address, not an IP (ThisWebHost "[CSR]
        # ... unusual amount of unsolicited email originating from your address")
        r"\bunsolicited (?:e-?mails?|mails?|messages?) (?:originating |sent )?from (?:your|the|this) "
        r"(?:e-?mail |sender )?address\b|"
        # a sender identity the provider has not verified (Tencent Cloud SES's error code
        # "FailedOperation.NotAuthenticatedSender")
        r"(?-i:\bNotAuthenticatedSender\b)|\bsender (?:address |identity )?(?:is )?not "
        r"(?:authenticated|verified) (?:in|with|by|on) (?:the |your )?(?:console|account|"
        r"provider)\b|"
        # Microsoft's Sender ID (an SPF variant on the From address)
        r"\bsender ?id (?:validation |verification |check )?fail\w*|"
        # the sender's domain that cannot receive mail (spamdyke "The domain of your sender
        # address has no mail exchanger (MX)")
        r"\b(?:sender|from|mail ?from)\b(?:[^.;]|\.(?=\w)){0,40}?\b(?:has no|have no|without"
        r"(?: an?)?|lacks(?: an?)?) (?:valid )?(?:mail exchanger|MX)\b|"
        # ... in other words (eYou "Your domain has not DNS/MX entries")
        r"\byour domain (?:has not|has no|does not have|doesnt have|hasnt)(?: any)?(?: valid)? "
        r"(?:DNS ?/ ?)?MX\b|"
        # a sender account that is, or is not, the server's own (AliMail '"MAIL FROM" is
        # non-local account', "Mailfrom account is a local account")
        r"\bmail ?from\W{0,2} (?:account |address )?is (?:a )?(?:non-?)?local account\b",
        # several From addresses is the header's syntax (RFC 5322), not the sender's identity
        unless=r"\busing\b|\blisted\b|spamhaus|\bRBL|greylist|\bmultiple From\b",
    ),
    # -- a recipient's state in other words ------------------------------------------------
    Rule(
        RuleId.recipient_state,
        Category.recipient_rejected,
        "the server refuses the recipient (it cannot verify it, or its mailbox is full or busy)",
        "The server refuses the test recipient: check the 'to' address, that the mailbox "
        "exists, is not full and accepts mail, or send the test to another recipient.",
        text=r"\brecipient\b(?:[^.;]|\.(?=\w)){0,40}?\b(?:cannot|can ?not|could not|couldnt|cant) be "
        r"(?:verified|validated|confirmed)|\bunable to (?:verify|validate) (?:the )?recipient|"
        r"\brecipient\b(?:[^.;]|\.(?=\w)){0,30}?\b(?:cannot|can ?not|cant|does not|doesnt) (?:receive|"
        r"accept) (?:e-?)?mails?\b|\bBAD_?RECIPIENT\b|\bbad recipient\b|"
        r"\bexhausted\b(?:[^.;:]|\.(?=\w)){0,30}?\b(?:storage|space|quota)|"
        r"\b(?:storage|space|quota)\b(?:[^.;:]|\.(?=\w)){0,20}?\b(?:exhausted|used up)|"
        r"\bspeicher(?:volumen|platz|kapazit\w+)?\b(?:[^.;:]|\.(?=\w)){0,30}?\b(?:[üu]e?berschritten|voll|"
        r"ersch[öo]pft)|"
        r"\b(?:recipient|mailbox|user|account)\b(?:[^.;]|\.(?=\w)){0,30}?\binsufficient (?:storage|space)|"
        r"\bover (?:its |the |their |her |his )?(?:allowed )?storage limit|"
        r"\bstorage limit\b|"
        r"\bmailbox (?:is )?(?:temporarily )?busy\b|MaxObjsExceeded|"
        # Yandex "No correct recipients", "Mailbox size exceeded"; "unresolvable address: <a>"
        r"\bno correct recipients?\b|\bmail ?box (?:size|storage) (?:is )?(?:exceeded|full)\b|"
        r"\bunresolvable (?:address|recipient)\b|"
        # Zoho's 452 "<a> Mailbox delivery restricted by policy error"
        r"\bmail ?box delivery (?:is )?restricted\b|"
        # Haraka's refusal of the recipient by a plugin that gave no text
        r"\brecipient <[^<>\s]{1,254}> (?:denied|rejected|refused)\b(?!\s*[:;,-]\s*\w)|"
        # spamdyke "Refused. Mail is not being accepted at this address."
        r"\b(?:e-?mail|mail|messages?) (?:is |are )?not (?:being )?accepted (?:at|for|by) (?:this|"
        rf"that|the) (?:address|recipient|mailbox)\b|\b{vocabulary.TOO_MANY} (?:items|objects|folders) in "
        r"(?:the |this )?mailbox",
        stages=(Stage.rcpt, Stage.data),
        unless=r"\bsending\b|\bqueue\b|system storage|\bdisk\b",
    ),
    # -- protocol misuse and relaying in other words -------------------------------------
    Rule(
        RuleId.smtp_line_or_data_misuse,
        Category.protocol_error,
        "the server refuses how the command or data was sent (a line too long, data it did "
        "not expect)",
        "The server refuses the way the client sent a command or the data (a line too long, "
        "too much data before its answer): an SMTP-inspecting firewall or proxy between the "
        "site and {host} may alter the conversation; turn off its SMTP inspection, else tell "
        "the server's administrator.",
        text=r"\b(?:command )?line (?:is )?too long\b|\bline length (?:exceeded|reached|limit)|"
        r"\bcommand too long\b|\bbare <?(?:LF|CR|line ?feed|newline)>?s?\b|"
        # qmail answers a bare LF with the address of the page that explains it
        r"\bsmtplf\b|\bnot (?:following|obeying|respecting|complying with) (?:the )?(?:smtp )?"
        r"protocol\b|\bexcessive (?:amounts? of )?data\b|\btoo much data sent\b|"
        # QQ's "Invalid input from <ip> to <host>": the line itself, not the sender
        r"\b(?:invalid|bad|malformed|illegal|unexpected) input\b|"
        # the end of data not seen, a line not parsed (SparkPost "5.6.0 Missing CR LF . CR LF",
        # "line parse error")
        r"\bmissing CR ?LF ?\. ?CR ?LF\b|\bline parse error\b|"
        # a command without its argument (Exim "MAIL FROM must have an address operand") or
        # with bytes the server does not take (Postfix "Error: bad UTF-8 syntax", "Must
        # declare SMTPUTF8 to send unicode address")
        r"\b(?:MAIL(?: FROM)?|RCPT(?: TO)?|EHLO|HELO|AUTH)\b:? (?:command )?(?:must have|requires|"
        r"needs) an? (?:\w+ )?(?:operand|argument|parameter)\b|\bbad UTF-?8 syntax\b|"
        r"\bmust declare SMTPUTF8\b",
        unless=r"header|\bbody\b|\bmessage\b|\bsize\b",
    ),
    Rule(
        RuleId.relay_delivery_not_allowed,
        Category.relay_denied,
        "the server does not deliver to this address for this client (relaying refused)",
        "{host} does not relay for this site: send to a recipient in a domain {host} receives "
        "mail for, or send through a relay that accepts this site (authenticated submission "
        "on {submission}).",
        text=r"\bdelivery (?:is )?not (?:allowed|permitted) (?:to|for) (?:this|that|the) "
        r"(?:address|recipient|domain)|\bdelivery to (?:this|that|the) (?:address|recipient|domain) "
        r"(?:is )?not (?:allowed|permitted)|\b(?:does not|doesnt|do not|dont|will not|wont) "
        r"(?:accept |allow |permit )?relay(?:ing)?\b|\bnot accept(?:ing)? relay|"
        # Haraka's rcpt_to.in_host_list: "I cannot deliver mail for <user@example.com>"
        r"\b(?:cannot|can ?not|will not|do not) deliver (?:e-?mail |mail |messages? )?(?:for|to) "
        r"(?:<|this domain|that domain)|"
        # mox "5.1.1 not accepting email for domain": the domain is not one it receives for
        r"\bnot accept(?:ing)? (?:e-?mail|mail|messages?) for (?:this |that |the |your )?domain\b|"
        # the recipient not one of its own (MailEnable "mailbox unavailable or is not local",
        # AliMail "Rcptto account isn't a local account", BT "no authorised destination groups")
        r"(?<!sender )(?<!from )\b(?:mail ?box|recipient|rcpt ?to|account|address)(?: account| address)?(?: unavailable)? "
        r"(?:or )?(?:is not|isnt) (?:a )?local\b|\bno authori[sz]ed destination\b",
        stages=(Stage.mail, Stage.rcpt),
        # "does not relay dynamically-assigned IP ranges" is about the IP (Outlook.com DY-001)
        unless=r"dynamic|\bIPs?\b|\blisted\b",
    ),
    # -- at MAIL, "local user(s) only": only the server's own users may be the sender (NetEase
    # "553 Local user only"); at RCPT the same words are relaying (words.relay)
    Rule(
        RuleId.sender_local_only,
        Category.sender_rejected,
        "the server accepts only its own users as the sender",
        "{host} accepts as sender only addresses of its own users: set the copier's From "
        "address to the mailbox it logs in with at this provider, and log in.",
        text=r"\blocal (?:users?|senders?|accounts?|mailbox(?:es)?) only\b|\bonly (?:local|our own|our) "
        r"(?:users?|senders?|accounts?) (?:may|can|are allowed to) send\b",
        stages=(Stage.mail,),
    ),
    # -- an address the server cannot parse (a 501 at MAIL or RCPT): the address's, not the
    # command's; its stage says whose ("'@' or '.' expected after", "recipient address must
    # contain a domain"). "Syntax: MAIL FROM:<address>" names the command and stays protocol.
    Rule(
        RuleId.address_syntax_sender,
        Category.sender_rejected,
        "the server cannot parse the sender address {sender}",
        "The server refuses the syntax of the copier's sender address ({sender}): set a full "
        "address (name@domain, no display name or spaces) as the copier's From address.",
        text=_ADDRESS_SYNTAX,
        stages=(Stage.mail,),
    ),
    Rule(
        RuleId.address_syntax_recipient,
        Category.recipient_rejected,
        "the server cannot parse the recipient address",
        "The server refuses the syntax of the test recipient's address: give a full address "
        "(name@domain, no display name or spaces) as the recipient.",
        text=_ADDRESS_SYNTAX,
        stages=(Stage.rcpt,),
    ),
    # -- during the login exchange, a reply that calls the client's line an unknown command:
    # the server took a base64 answer for a command (Postal "Invalid/unsupported command" to
    # an HP printer's login); AUTH was advertised, so it is the exchange, not AUTH switched off
    Rule(
        RuleId.auth_exchange_not_understood,
        Category.protocol_error,
        "the server did not follow the login exchange (it took a line of it for a command)",
        "{endpoint} answered a line of the login exchange as an unknown command: choose another "
        "login method on the copier (LOGIN or PLAIN), update its firmware, and turn off SMTP "
        "inspection on a firewall between the site and {host}.",
        text=r"\b(?:invalid|unsupported|unknown|unrecogni[sz]ed|bad)(?:/(?:invalid|unsupported|"
        r"unknown|unrecogni[sz]ed))? command\b|\bcommand (?:not (?:recogni[sz]ed|understood|"
        r"supported)|unrecogni[sz]ed)\b",
        stages=(Stage.auth,),
        unless=r"\bauth\w*|\blogin\b|mechanism|method",
    ),
    # -- AUTH switched off for these servers or by the provider's policy ------------------
    Rule(
        RuleId.auth_off_here,
        Category.auth_disabled,
        "the server does not accept password logins here (AUTH switched off)",
        "Password (Basic) AUTH is switched off on this server or for {mailbox}: move the "
        "copier to " + remedies.AUTH_ALTERNATIVES + ".",
        text=r"\bauth\w* (?:is )?(?:not (?:allowed|permitted|available|enabled)|disabled|"
        r"turned off) (?:on|for) (?:this |these |the )?(?:[\w.-]{1,40} )?(?:servers?|hosts?|"
        r"ports?)\b|"
        r"\bauth(?:entication)? (?:is |has been )?(?:disabled|turned off|switched off)\b|"
        r"\b(?:password|smtp|basic|legacy) auth\w* (?:is |has been )?(?:disabled|not (?:allowed|"
        r"permitted|enabled|available)|turned off|switched off)\b|"
        # SMTP itself switched off for the account ("SMTP access is disabled for this account",
        # "This account has SMTP disabled", "not allowed to send mail via SMTP")
        r"\bsmtp(?: access| service| sending| relay)? (?:is |has been )?(?:disabled|not (?:enabled|"
        r"allowed|permitted|activated)|turned off|switched off)\b|\b(?:has|with) smtp (?:access )?"
        r"(?:disabled|turned off)\b|\bnot (?:allowed|permitted|authori[sz]ed|enabled) to (?:send "
        r"(?:e-?mail |mail )?)?(?:via|using|over|through|with) smtp\b|"
        # AUTH kept for other ports (mox "authentication only allowed on submission ports")
        r"\bauth\w* (?:is )?only (?:allowed|permitted|available|enabled|supported) (?:on|via|"
        r"over|through|for) |"
        # the mechanism offered is not one the server takes (RFC 4954's 504)
        r"\b(?:unknown|unsupported|unrecogni[sz]ed|invalid) (?:authentication|auth|sasl) "
        r"(?:method|mechanism|type)s?\b",
        stages=(Stage.auth,),
        unless=r"encrypt|\bTLS\b|\bSSL\b|secure|plain ?text|clear ?text|\bfirst\b",
    ),
)


# Below the causes the words name (identity, session, envelope), above the subjects: a wait
# counted in seconds or minutes ("422 try again in 15 seconds") is a rate, unless the reply
# also names a cause ("your IP is listed ...; try again in 30 minutes", "Please use SMTP AUTH;
# try again in 5 minutes", "Temporary system problem. Try again in 10 minutes"): those decide.
COUNTED_WAITS: tuple[Rule, ...] = (
    Rule(
        RuleId.limit_counted_wait,
        Category.throttled,
        "the server asks this site to wait a counted time before sending again (a rate limit)",
        "The server limits how often this site sends ({ip}): reduce how many devices send at "
        "once and how often, or wait and try again later.",
        text=r"\b(?:try|retry|send) again in \d{1,4} ?(?:seconds?|secs?|minutes?|mins?)\b",
        unless=r"\bnot accepting\b|\bsystem problem\b|\bsystem (?:is )?(?:busy|unavailable)\b",
    ),
)
