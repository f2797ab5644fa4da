"""Rules for the envelope and the message: the sender, relaying, the recipient, limits,
protocol errors, and words that say what was refused with no cause fleet knows."""

from __future__ import annotations

from fleet.judgement import vocabulary
from fleet.judgement.rule import Rule
from fleet.judgement.rule_ids import RuleId
from fleet.results import Category, Stage

ENVELOPE: tuple[Rule, ...] = (
    # -- sender -----------------------------------------------------------------------------
    Rule(
        RuleId.m365_send_as_denied,
        Category.sender_rejected,
        "{mailbox} may not send as {sender}",
        "The login mailbox may not send as {sender}: set the copier's From to {mailbox}, or "
        "grant {mailbox} Send As on {sender}, or use a connector relay.",
        enhanced=("5.7.60", "5.2.252"),
    ),
    Rule(
        RuleId.m365_send_as_denied_text,
        Category.sender_rejected,
        "{mailbox} may not send as {sender}",
        "The login mailbox may not send as {sender}: set the copier's From to {mailbox}, or "
        "grant {mailbox} Send As on {sender}, or use a connector relay.",
        text=r"SendAsDenied|permissions to send as this sender",
    ),
    Rule(
        RuleId.m365_restricted_sender,
        Category.sender_rejected,
        "the sending mailbox is blocked for sending spam",
        "{mailbox} is on Microsoft's restricted users list (5.1.8): secure the account (reset "
        "the password, check for compromise), then release it in the Defender portal.",
        enhanced=("5.1.8",),
    ),
    Rule(
        RuleId.m365_banned_account,
        Category.sender_rejected,
        "Microsoft has banned the sending account for spam",
        {
            "unauthenticated": (
                "Microsoft has banned the sender {sender} for spam (5.7.501-5.7.503): secure the "
                "account (reset its credentials, look for a compromise), then contact Microsoft "
                "support to lift the ban."
            ),
            "authenticated": (
                "Microsoft has banned {mailbox} for sending spam (5.7.501-5.7.503): secure the "
                "account (reset its password, look for a compromise and forwarding rules), then "
                "contact Microsoft support to lift the ban, and give the copier the new password."
            ),
        },
        enhanced=("5.7.501-5.7.503",),
    ),
    Rule(
        RuleId.m365_banned_sender_domain,
        Category.sender_rejected,
        "Microsoft has banned a domain this sender uses",
        "Microsoft bans a domain of this conversation (5.7.800: the EHLO name, or the domain of "
        "{sender} in MAIL FROM or From): make sure the copier's EHLO name and sender are in "
        "your own domain, then contact Microsoft support.",
        enhanced=("5.7.800",),
    ),
    Rule(
        RuleId.m365_tenant_threshold,
        Category.sender_rejected,
        "the tenant is blocked from sending (it sent too much spam)",
        "The whole tenant is blocked (5.7.700-5.7.749): find the compromised account or connector, "
        "fix it, then contact Microsoft support.",
        # Microsoft's NDR table: 5.7.700-5.7.749 "Access denied, tenant has exceeded
        # threshold" (5.7.703 and 5.7.708 have their own meanings, read above)
        enhanced=("5.7.700-5.7.749",),
    ),
    Rule(
        RuleId.m365_unregistered_domain,
        Category.sender_rejected,
        "the sender's domain is not an accepted domain of the tenant",
        "Add and verify the sender's domain in Microsoft 365 (5.7.750), or send from an "
        "address in an accepted domain.",
        enhanced=("5.7.750",),
    ),
    Rule(
        # The login may not use this sender address (Stalwart "You are not allowed to send
        # from this address", maddy "Unauthorized use of sender address", James "Incorrect
        # Authentication for Specified Email Address"), whatever its 5.5.x code says.
        RuleId.sender_not_authorised_address,
        Category.sender_rejected,
        "{mailbox} may not send as {sender}",
        "The server does not let this login send as {sender}: set the copier's From to the "
        "login mailbox ({mailbox}) or an address it may send as, or grant it that right.",
        text=r"not (?:allowed|permitted|authori[sz]ed) to (?:send|use|relay) (?:mail )?"
        r"(?:from|as|on behalf of|with) (?:this|that|the|your|specified)\b|"
        r"unauthori[sz]ed (?:use of )?(?:the )?(?:sender|from|mail ?from|envelope)|"
        r"(?:authentication|login|credentials) (?:for|does not match) (?:the |this |"
        r"that |your |specified )?(?:e-?mail|sender|from|mail ?from) address|"
        r"(?:sender|from) (?:address )?(?:is )?not owned|"
        r"not owned by (?:the )?(?:user|login|account)|"
        # the other way round: the sender does not match the login
        r"(?:sender|from|mail ?from|envelope[- ]from)(?: address)? (?:does not|did not) "
        r"match (?:the |your )?(?:authenticated|logged[- ]in|login|auth|sasl) (?:user|account|"
        r"identity|name|login)|\bnot one of your (?:addresses|identities)\b",
        stages=(Stage.mail, Stage.rcpt, Stage.data),
    ),
    Rule(
        # RFC 7505: a sender domain that publishes "MX 0 ." receives no mail, so it may send none.
        RuleId.sender_null_mx,
        Category.sender_rejected,
        "the sender's domain publishes a null MX (RFC 7505): it takes no mail",
        "The domain of {sender} publishes a null MX (it receives no mail), so receivers refuse "
        "it as a sender: send from an address in a domain that receives mail.",
        text=r"null MX|RFC ?7505",
        stages=(Stage.mail, Stage.rcpt, Stage.data),
        unless=r"recipient",
    ),
    Rule(
        # RFC 3463: at MAIL FROM, an X.1.x status is about the sender's address.
        RuleId.smtp_sender_status,
        Category.sender_rejected,
        "the server refuses the sender address {sender} (its status code says the address is "
        "the problem)",
        "The server refuses {sender} as a sender: use an address in a domain that exists and "
        "that the server accepts mail from (usually the login mailbox or an accepted domain).",
        stages=(Stage.mail,),
        enhanced=("5.1.0-5.1.99", "4.1.0-4.1.99"),
    ),
    Rule(
        # IceWarp "5.5.2 Domain name required" at MAIL FROM: the sender has no domain (its
        # table), which beats 5.5.2's "syntax error".
        RuleId.smtp_sender_domain_required,
        Category.sender_rejected,
        "the server wants a domain in the sender address {sender}",
        "The server refuses a sender address without a domain: set the copier's sender (From) "
        "address to a full address in your domain (name@domain).",
        text=r"\bdomain (?:name )?(?:is )?required\b",
        stages=(Stage.mail,),
        unless=rf"\b{vocabulary.HELO}\b",  # a HELO name demanded late is the HELO's
    ),
    Rule(
        RuleId.smtp_sender_rejected,
        Category.sender_rejected,
        "the server rejects the sender address {sender}",
        "The server refuses {sender} as a sender: use an address in a domain the server "
        "accepts mail from (usually the login mailbox or an accepted domain).",
        text=rf"sender address {vocabulary.REJECTED}|sender (?:is )?not (?:allowed|permitted|authori[sz]ed)|"
        r"(?:sender|mail ?from) address syntax|bad sender address|"
        # a list that takes posts only from its members refuses the sender (sisimai's
        # PolicyViolation: "by non-member to a members-only list", "closed mailing list")
        r"\bmembers[- ]only\b|\bnon-?member\b|\bnot (?:a )?(?:member|subscriber) of (?:the |this |"
        r"that )?(?:[\w-]{1,30} )?(?:list|group|mailing)|\b(?:is not|not) a (?:group|list) "
        r"member\b|"
        r"\bnot (?:allowed|permitted|authori[sz]ed) to post\b|\bpermission to post\b|"
        r"\bclosed mailing list\b|"
        r"sender verif\w+ failed|verification failed for <?[^\s@<>]{1,64}@|envelope blocked|"
        r"envelope sender|badmailfrom|sender (?:domain )?(?:must exist|not found|unknown|"
        r"rejected|denied|blocked)|(?:mail ?from|sender) (?:address )?(?:is )?(?:invalid|"
        r"rejected|refused|blocked|not accepted)|domain of sender address|"
        r"sender domain|unverifiable sender|spoof|unroutable sender|not a valid RFC ?5321|"
        r"(?:address|identit\w+) (?:is |are )?not verified|identities failed|"
        r"(?:sending|sender) (?:e-?mail )?account (?:has been|is) (?:\w+ )?suspended|"
        r"(?:verified|unverified) sender identity|sender identity|invalid sender|"
        r"(?:invalid|no|missing) (?:DNS )?MX (?:or A|record)|"
        r"(?:for|of) your mail ?from address|"
        # a bounce without the receiver's own tag (BATV: MailCleaner "This domain does not
        # accept unsigned bounces", "Bounce address tag validation failed")
        r"\bunsigned bounces?\b|\bbounce address tag validation\b|\bBATV\b|"
        # a sending domain the provider has not set up (SparkPost "Unconfigured Sending Domain",
        # Mailgun "Sandbox subdomains are for test purposes only")
        r"\b(?:unconfigured|unverified|unregistered) sending domain\b|\bsending domain (?:is )?"
        r"not (?:configured|verified|registered)\b|\bsandbox (?:sub)?domains? (?:are|is) for test|"
        r"mail from <?[^\s@<>]{1,64}@[^\s<>]{1,255}>? (?:was |is )?(?:rejected|refused|denied|"
        r"not accepted)|"
        # the sender's domain or policy named after the refusal
        r"(?:do not|does not|will not) accept (?:e-?mail |mail |messages? )?"
        r"from (?:your|the sender'?s?|this) domain|(?:rejected|refused|denied|blocked) (?:due to|"
        r"because of|by) (?:the )?sender(?:'s)? (?:policy|policies|restrictions?)",
        # "Sender address rejected: Greylisted" / ": rate limit exceeded": the cause after the
        # subject has its own rule below (the subject.sender_prefix rule catches the rest)
        # ("The recipient address <a> is not a valid RFC 5321 address" is the recipient's)
        unless=r"gr[ea]y ?list|rate ?limit|too? many|exceeded|reached|throttl|in the last \d{1,4} (?:minutes|hours)|"
        r"\brecipient address\b",
    ),
    Rule(
        # Outlook.com: "domain [example.com] mismatches client ip": the sender's domain does
        # not authorise the sending IP (SPF in other words).
        RuleId.smtp_sender_domain_mismatch,
        Category.sender_rejected,
        "the sender's domain does not match the sending IP {ip}",
        "The receiver says the sender's domain ({sender}) does not go with the site's IP "
        "{ip}: add ip4:{ip} to that domain's SPF record, or send from a domain (or through a "
        "relay) that authorises this IP.",
        text=r"mismatch\w* (?:the |with )?(?:client|connecting|sending|your|source) ip|"
        # the envelope sender against the header From ("MAIL FROM is mismatched with message
        # header from address", BMH), and IPs the domain does not vouch for ("permits 2
        # unverifyable sending IPs - example.com is not 203.0.113.222", sisimai)
        r"\b(?:mail ?from|envelope(?:[- ]from| sender)?)\b(?:[^.;]|\.(?=\w)){0,30}?\b(?:mis-?match\w*|"
        r"does not match)\b(?:[^.;]|\.(?=\w)){0,30}?\bfrom\b|\bunverif\w* sending ips?\b|"
        r"(?:sender|from) domain\b(?:[^.;]|\.(?=\S)){0,60}\b(?:mismatch|does not match)|"
        r"\bdomain\b(?:[^.;]|\.(?=\S)){0,60}\bdoes not match (?:the |your )?(?:client|connecting|"
        r"sending|source) ip|"
        # the IP not authorised for the sender's domain, in other words (SPF by another name)
        r"\b(?:invalid|unauthori[sz]ed|not permitted|not authori[sz]ed) ip for sending (?:mail )?"
        r"(?:of|for|from) (?:the )?domain|\bis not allowed to send mail from\b",
    ),
    # -- relay and recipient ------------------------------------------------------------
    Rule(
        RuleId.m365_message_format,
        Category.message_rejected,
        "the message's From header is not RFC 5322 compliant",
        "Fix the copier's From formatting (angle brackets, quoted display name) (5.7.512).",
        enhanced=("5.7.512",),
    ),
    Rule(
        # RFC 3463: X.2.3 the message is longer than the mailbox takes, X.3.4 than the system.
        RuleId.smtp_message_size,
        Category.message_rejected,
        "the message is larger than the server accepts",
        "The server refuses messages this large: lower the copier's scan resolution or "
        "attachment size limit (or split large scans), or ask for a larger limit.",
        enhanced=("5.2.3", "5.3.4", "4.2.3", "4.3.4"),
        # "5.2.3 MailPolicy violation" (Zoho) names a policy, not a size
        unless=r"^(?![^\n]{0,4096}\b(?:size|large|big)\b)[^\n]{0,4096}polic(?:y|ies)",
        # only where there is a message (or its SIZE): at the greeting "4.3.4 allocated
        # resources exceeded" is the server's own state
        stages=(Stage.mail, Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.smtp_recipient_mailbox_full,
        Category.recipient_rejected,
        "the recipient's mailbox is full",
        "The test recipient's mailbox is full (over its quota): empty it or raise its quota, "
        "or send the test to another recipient.",
        text=r"mail ?box (?:size limit|quota|is full|full|over ?quota|storage)|over ?quota|"
        r"(?:mailbox|storage|disk|user|account)(?:'s)? quota|quota (?:exceeded|reached|full)|"
        rf"{vocabulary.EXCEEDED} (?:its |the |their |his |her )?storage|storage allocation|"
        rf"(?:mailbox|inbox) (?:has )?{vocabulary.EXCEEDED}|"
        # the recipient's storage in other words (a receiver's own disk is its own fault)
        r"\b(?:mail ?box|(?:mail ?)?folder|inbox|boite\b[\w ]{0,20}?) (?:is |est )?(?:full|pleine)\b|"
        r"\bfull mail ?box|\b(?:postfach|buz[oó]n|casella|caixa)\b(?:[^.;:]|\.(?=\w)){0,20}?\b(?:voll|"
        r"lleno|piena|cheia)\b|\b(?:user|account|recipient|mailbox)\b(?:[^.;:]|\.(?=\w)){0,20}?\b(?:is |are )?"
        r"(?:over|(?:exceed\w*|reached)) (?:the |their |its |his |her |allowed |storage )*quota|"
        r"\bquota (?:violation|exceeded|reached|full)|\bover (?:the |their |its )?(?:allowed |storage |"
        r"disk )?quota\b|\bdisk ?space quota\b|(?:not|does not have) (?:enough|"
        r"sufficient) (?:storage |mailbox )?space|space (?:has been|is) used up|"
        rf"\bout of (?:storage )?space\b|would exceed\b(?:[^.;:]|\.(?=\w)){{0,30}}?\b(?:storage|quota|size)|{vocabulary.TOO_MANY} messages (?:on|in) "
        r"(?:the server|(?:the |this )?mailbox)",
        stages=(Stage.rcpt, Stage.data),
        unless=r"sending|submission|\bsend\b|\brate\b|per (?:hour|day|minute)|daily|hourly|"
        r"queue|organi[sz]ation|tenant|policy rejection",
    ),
    Rule(
        # "Quota limit exceeded" says a limit, not whose: with X.2.2 (mailbox full) at RCPT the
        # status code says it is the recipient's storage, not a sending limit.
        RuleId.smtp_recipient_quota_code,
        Category.recipient_rejected,
        "the recipient's mailbox is full",
        "The test recipient's mailbox is full (over its quota): empty it or raise its quota, "
        "or send the test to another recipient.",
        enhanced=("4.2.2", "5.2.2"),
        text=r"\bquota\b|storage|\bspace\b|\bfull\b",
        stages=(Stage.rcpt,),
        unless=r"sending|submission|\bsend\b|\brate\b|per (?:hour|day|minute)|daily|hourly",
    ),
    Rule(
        RuleId.smtp_content_rejected,
        Category.message_rejected,
        "the server refuses the message itself (content, size or headers)",
        "The receiver refused the test message itself (its content, size or headers): read "
        "the reply; scans are usually refused for their size or attachment type.",
        text=r"\btaille (?:limite|maximale)\b|\bmessage trop (?:gros|volumineux)\b|\bspam\b(?! ?(?:abuse|haus|from your))|\bUBE\b|virus|malware|content (?:rejected|"
        r"presents|filter|policy|denied|blocked|not allowed)|message content|spam ?signature|"
        r"(?:rejected|blocked) due to security polic|(?:message|size) (?:size )?(?:limit|exceed|too "
        r"(?:big|large))|exceeded .{0,30}size|From: header|(?:missing|invalid|malformed) "
        r"\w* ?header|header (?:value |field )?(?:is )?(?:not allowed|rejected|invalid|"
        r"forbidden)|not accepted for policy reasons|policy that prohibit\w*|security issue|attachment|"
        r"likely unsolicited|looks like spam|suspicious (?:content|message)|RFC ?5322|"
        r"\bMIME\b|nature of the content|links? within|headers? (?:are |is )?not RFC|"
        r"not RFC[- ]?\d* ?compliant|\(header[- ]based\)|message (?:was |has been )?filtered|"
        r"(?:e-?mail|message|content|mail) policy violation|8-?bit (?:data|char\w*|content|text)\b|"
        # content filters' verdicts: Amavis "Reject, id=... - INFECTED / BANNED", SpamAssassin
        r"\b(?-i:INFECTED)\b|- (?-i:BANNED)\b|\bbanned (?:attachment|file|content)|spamassassin|"
        r"\b(?:VBA )?macros? found\b|\bcontaining (?:VBA )?macros\b|"
        r"\bsubject (?:is |field )?(?:mandatory|required|missing)\b|"
        r"spam ?filter|(?:message|mail|file) (?:\w+ )?too (?:big|large)|"
        # the message too large in other languages (de, fr, es, it)
        r"\b(?:nachricht|mail|message|mensaje|messaggio)\b(?:[^.;:]|\.(?=\w)){0,20}?\b(?:zu gro(?:ß|ss)|"
        r"trop (?:gros|volumineux|grand)|demasiado grande|troppo grande)",
        # "Your account has been suspended for sending spam": the account, not the content
        # ... and spam "from your IP" is the IP's reputation, not the message's
        unless=r"rate limited|\baccount (?:has been |is |was )?(?:suspended|disabled|blocked)|"
        r"\b(?:from|of) your (?:IP|host|server|network|mail ?server)\b",
    ),
    Rule(
        RuleId.m365_reject_direct_send,
        Category.relay_denied,
        "the tenant refuses Direct Send from unauthorised sources",
        "The tenant has RejectDirectSend on (5.7.68): create a partner (inbound) connector "
        "for the site's static IP {ip} or its certificate, or move the copier to "
        "authenticated submission on {submission}.",
        enhanced=("5.7.68",),
    ),
    Rule(
        RuleId.m365_reject_direct_send_text,
        Category.relay_denied,
        "the tenant refuses Direct Send from unauthorised sources",
        "The tenant has RejectDirectSend on (5.7.68): create a partner (inbound) connector "
        "for the site's static IP {ip} or its certificate, or move the copier to "
        "authenticated submission on {submission}.",
        text=r"TenantInboundAttribution|Direct Send not allowed",
    ),
    Rule(
        RuleId.m365_tenant_attribution,
        Category.relay_denied,
        "no inbound connector matches the site's IP any more",
        "The connector no longer matches (5.7.64 TenantAttribution): update the inbound "
        "connector (and SPF) to the IP the server saw, {ip}; a changed static IP is the usual "
        "cause.",
        enhanced=("5.7.64", "4.4.62"),
    ),
    Rule(
        RuleId.m365_tenant_attribution_text,
        Category.relay_denied,
        "no inbound connector matches the site's IP any more",
        "The connector no longer matches (TenantAttribution): update the inbound connector "
        "(and SPF) to the IP the server saw, {ip}.",
        text=r"TenantAttribution|wrong Office 365 region",
    ),
    Rule(
        RuleId.ipv6_not_accepted,
        Category.recipient_rejected,
        "the recipient's domain does not accept mail over IPv6",
        "The recipient's domain refuses mail over IPv6 (5.7.510): send over IPv4 (an IPv4 "
        "route from the site to {host}, or IPv6 turned off on the copier).",
        enhanced=("5.7.510",),
    ),
    Rule(
        RuleId.m365_dbeb_unknown_recipient,
        Category.recipient_rejected,
        "the recipient does not exist in the tenant",
        "The test recipient is not a known address in Microsoft 365 (Directory-Based Edge "
        "Blocking): fix the recipient address, or check the accepted domain type.",
        enhanced=("5.4.1", "5.7.504"),
        text=rf"Recipient address(?:es)? {vocabulary.REJECTED}",
    ),
    Rule(
        RuleId.m365_relay_access_denied,
        Category.relay_denied,
        "this host does not accept mail for the recipient's domain",
        "{host} does not accept mail for the recipient's domain (5.4.1 Relay Access Denied): "
        "point the copier at the domain's current MX, and check the domain is accepted in "
        "the tenant.",
        enhanced=("5.4.1",),
        text=r"relay",
    ),
    Rule(
        RuleId.m365_recipient_not_found,
        Category.recipient_rejected,
        "the recipient address does not exist",
        "The test recipient does not exist: fix the 'to' address in the inventory (and on the "
        "copier's address book).",
        enhanced=("5.1.10",),
    ),
    Rule(
        RuleId.google_relay_ip_not_registered,
        Category.relay_denied,
        "Google's SMTP relay does not know {ip} (or this login) as a sender for the domain",
        "Register the site's IP {ip} in the Google Admin console (Apps > Google Workspace > "
        "Gmail > Routing > SMTP relay service), or configure the relay to accept SMTP AUTH "
        "and give the copier a login.",
        text=r"IP not in whitelist|invalid credentials for relay",
    ),
    Rule(
        RuleId.m365_unable_to_relay,
        Category.relay_denied,
        "Microsoft 365 will not relay to the recipient's domain",
        {
            "unauthenticated": (
                "{host} refuses to relay: Direct Send only reaches mailboxes hosted in the "
                "same tenant. For outside recipients use authenticated submission on "
                "{submission} or a connector relay from a static IP."
            ),
            "authenticated": (
                "{host} refuses to relay for {mailbox}: check that the login succeeded and the "
                "mailbox may send, or use {submission}."
            ),
        },
        text=r"unable to relay",
        providers=("microsoft",),
    ),
    Rule(
        RuleId.smtp_relay_denied,
        Category.relay_denied,
        "the server will not relay to the recipient's domain",
        {
            "unauthenticated": (
                "{host} only accepts mail for its own domains from this site: send to a "
                "recipient it hosts, log in first (submission on {submission}), or ask its "
                "administrator to allow relaying from {ip}."
            ),
            "authenticated": (
                "{host} refuses to relay for {mailbox}: allow relaying for this login on the "
                "server, or use the provider's submission host ({submission})."
            ),
        },
        text=r"unable to relay|relay(?:ing)? (?:access )?(?:is )?(?:denied|rejected|not permitted|"
        r"not allowed|prohibited|refused|disallowed)|not (?:permitted|allowed|authori[sz]ed) "
        r"to relay|list of allowed rcpthosts|use me as a relay|(?:we|i) do not relay|"
        r"does not relay|no relaying|relay (?:not|denied)|cannot relay|"
        r"(?:is not|not) allowed to be relayed|"
        r"not (?:a )?local (?:domain|recipient)|configured to relay|"
        r"not permitted to relay|\buser not local\b|"
        # Twisted's SMTP server for an address outside its domains ("Cannot receive for
        # specified address")
        r"\bcannot receive (?:mail )?for (?:the |this |that )?specified (?:address|domain)\b|"
        r"\b(?:domain|recipient)s? (?:is |are )?not hosted (?:here|on this server)\b|"
        # the recipient's domain is not one this host serves
        r"allowed rcpthosts?\b|\b(?:do not|does not|not) (?:handle|accept|"
        r"receive) mail for\b|\bnot (?:a |an )?(?:gateway|local host|open relay)\b|"
        r"\b(?:insecure|open) (?:mail )?relay\b|\bas a relay\b|\brelaying mail to\b|"
        # relaying refused after its object ("relaying to <a> prohibited by administrator",
        # "Unauthorized relay msg rejected", BMH)
        r"\brelay(?:ing)?\b(?:[^.;]|\.(?=\w)){0,100}?\b(?:prohibited|forbidden|not authori[sz]ed)\b|"
        r"\bunauthori[sz]ed relay\w*|"
        # a relay that knows its clients by IP: "your IP is not in our whitelist"
        r"\bIP(?: address)? (?:is )?not (?:in|on) (?:our|the|my|a) (?:white|allow) ?list|"
        # relaying refused in French and German ("Relais interdit", "Relaying nicht erlaubt")
        r"\brelais (?:interdit|refus[ée]|non autoris[ée])|\brelay(?:ing)? (?:ist )?nicht "
        r"(?:erlaubt|gestattet)|"
        # only local recipients, in other words ("Local user only", Coremail; "domain of
        # forward path is not allowed", Trend Micro: RFC 5321's forward-path is the recipient;
        # sisimai's NoRelaying "specified domain is not allowed")
        r"\blocal (?:users?|recipients?|domains?|delivery|mail(?:boxes)?) only\b|\bonly (?:for )?"
        r"(?:local|our own|hosted) (?:users|recipients|domains|mailboxes|delivery)\b|"
        r"\bforward[- ]path\b(?:[^.;]|\.(?=\w)){0,30}?\bnot (?:allowed|permitted|accepted|local)\b|"
        r"\b(?:recipient'?s?|destination|specified|target|rcpt|recipient) domain\b(?:[^.;]|\.(?=\w)){0,20}?"
        r"\b(?:is )?not (?:allowed|permitted|accepted|served|local|handled)\b",
    ),
    Rule(
        RuleId.m365_mailbox_full,
        Category.message_rejected,
        "the sending mailbox is full",
        "The scanner mailbox's Sent Items filled it: add a retention policy to Sent Items.",
        enhanced=("5.2.2",),
        stages=(Stage.mail, Stage.data),
        providers=("microsoft",),
        unless=r"submission quota|SubmissionQuota",
    ),
    Rule(
        RuleId.smtp_unknown_recipient,
        Category.recipient_rejected,
        "the server does not know the recipient",
        "The test recipient is unknown to the server: fix the 'to' address.",
        text=r"user unknown|unknown user|no such (?:user|recipient|mailbox|address|account)|"
        r"\bnot (?:one of )?our (?:users?|customers?|clients?|members?|subscribers?|"
        r"recipients?)\b|\bis not a registered (?:gateway )?user\b|"
        # the recipient missing from the server's own table ("Recipient not in route list",
        # hMailServer; "this recipient is not in my validrcptto list", qmail)
        r"\brecipient\b(?:[^.;]|\.(?=\w)){0,20}?\bnot in (?:the |my |our |its )?(?:[\w-]{1,20} )?list\b|"
        r"recipient verif\w* failed|"
        r"mailbox (?:unavailable|not found|does not exist|unknown|disabled|inactive)|"
        r"does not exist|RecipientNotFound|"
        r"(?:invalid|unknown|bad) (?:recipient|mailbox|address)|recipient (?:not found|unknown|"
        r"invalid)|(?:user|account|address) (?:not found|disabled|unknown)|"
        r"unrouteable address|not a valid (?:mailbox|recipient)|over quota|mailbox (?:is )?full|"
        r"(?:recipient|destination)(?:'s)? account|compte du destinataire|"
        r"undeliverable address|no mailbox",
        # at MAIL FROM the address that "does not exist" is the sender's (subject.sender_*)
        stages=(Stage.rcpt, Stage.data),
    ),
    Rule(
        RuleId.smtp_recipient_inactive,
        Category.recipient_rejected,
        "the recipient's mailbox is disabled or no longer in use",
        "The test recipient's mailbox is disabled, frozen or no longer in use: send the test "
        "to a live address (fix the 'to' address in the inventory and on the copier).",
        text=r"(?:mailbox|account|address|user|recipient|addressee)(?: address)? (?:is |has been |"
        r"was )?(?:disabled|frozen|inactive|deactivated|discontinued|closed|suspended|expired|"
        r"no longer (?:valid|active|in use|available|exists?))|(?:disabled|frozen|inactive|"
        r"deactivated|closed|suspended|expired|discontinued) (?:recipient|mailbox|account|user|"
        r"address)|\bis no longer (?:valid|active|in use|available)|"
        r"\b(?:is|has been) (?:currently |temporarily )?(?:suspended|deactivated|terminated|"
        r"archived)\b|\btemporar(?:y|ily) (?:locked|inactive)\b|\bsuspend(?:ed)? the service\b",
        stages=(Stage.rcpt, Stage.data),
        unless=r"sending|sender|your account|authenticat|log ?in|password",
    ),
    # -- throttling -----------------------------------------------------------------------
    Rule(
        RuleId.m365_ip_throttled,
        Category.throttled,
        "Microsoft 365 is temporarily limiting mail from {ip}",
        "Microsoft throttles {ip} (its volume changed or it is new): wait; for a relay, "
        "create an inbound connector so the traffic is attributed to the tenant.",
        enhanced=("4.7.500-4.7.699", "4.7.850-4.7.899"),
    ),
    Rule(
        RuleId.m365_sender_thread_limit,
        Category.throttled,
        "too many simultaneous connections for one mailbox",
        "More than 3 connections at once for {mailbox}: give each copier its own mailbox, or "
        "send one at a time.",
        enhanced=("4.3.2",),
        text=r"thread limit|concurrent",
    ),
    Rule(
        RuleId.m365_ipv6_range_limit,
        Category.throttled,
        "Microsoft 365 limits how much mail the site's IPv6 range may send",
        "The site's IPv6 range sent more than Microsoft permits (5.7.508): slow down (fewer "
        "devices or messages at once) and try again later, or send over IPv4.",
        text=rf"{vocabulary.EXCEEDED} permitted limits",
    ),
    Rule(
        RuleId.google_relay_peak_limit,
        Category.throttled,
        "the Workspace customer is over Google's SMTP relay peak limit",
        "Google's SMTP relay takes no more mail for this Workspace customer for now (4.2.1 "
        "peak limit): the copier should retry later; if it recurs, spread the sending over "
        "time and find what else sends through the relay.",
        text=r"Peak SMTP relay limit",
    ),
    Rule(
        RuleId.m365_submission_quota,
        Category.throttled,
        "the mailbox exceeded its daily sending limit",
        "{mailbox} exceeded SMTP AUTH limits (30 messages/min, 10,000 recipients/day): spread "
        "the load or use a relay.",
        text=r"SubmissionQuotaExceeded|submission quota",
    ),
    Rule(
        RuleId.smtp_too_many_recipients,
        Category.throttled,
        "the message has more recipients than the server takes at once",
        "The server takes fewer recipients per message (4.5.3): send the scan to fewer "
        "recipients at once, or to a distribution group.",
        enhanced=("4.5.3",),
    ),
    Rule(
        # Microsoft's "451 4.7.0 Temporary server error. Please try again later. PRX4": a
        # fault on its side, not a limit on the site.
        RuleId.smtp_temporary_server_error,
        Category.temporary_failure,
        "the server had a temporary internal error",
        "{host} reported an internal error of its own (a transient fault, not a limit on this "
        "site): run the site again later; if it persists for hours, check the provider's "
        "service health.",
        text=r"temporary server error|internal server error|temporary (?:local |system )?(?:problem|"
        r"failure|error)|system problem|local error in processing|try again later.{0,20}\bPRX\d|"
        r"insufficient (?:disk|system) ?(?:space|storage)|temporar(?:y|ily) unavailable|"
        r"service (?:is )?(?:temporarily )?unavailable|"
        # Daum's "4.4.5 CCRT IP ADDRESS: Connection refused. Server is busy(RT)"
        r"\bserver (?:is )?(?:too |very )?busy\b",
        code_class="4",
    ),
    Rule(
        # A limit is a limit even when the server says it permanently (Gmail 550 5.4.5).
        RuleId.smtp_sending_limit,
        Category.throttled,
        "the server says a sending limit was exceeded",
        "A sending limit was exceeded ({mailbox} or this site): spread the sending over time "
        "or over more mailboxes, or use a relay service sized for the volume.",
        text=r"sending (?:limit|quota)|(?:daily|hourly|message|rate|recipient) (?:user )?"
        rf"(?:sending )?(?:limit|quota) {vocabulary.EXCEEDED}|(?:limit|quota) {vocabulary.EXCEEDED}|"
        rf"{vocabulary.EXCEEDED} (?:the |your )?(?:\w+ )?(?:sending |message |rate )?(?:limit|quota)|"
        r"(?:reached|hit) (?:the |your )?(?:daily |hourly )?(?:sending )?limit|"
        rf"{vocabulary.TOO_MANY} (?:messages|mails|emails|connections|recipients)|rate ?limit|"
        r"limits? (?:for|on) how many|(?:messages|recipients) (?:per|this) (?:hour|day)|"
        # a limit named, then said to be exceeded ("per hour message receive limit ... exceeded")
        r"\bcredits? (?:exceeded|reached|exhausted)|\blimit\b(?:[^.;:]|\.(?=\w)){0,40}?\bexceeded\b|\b(?:exceed\w*|reached) (?:the |your |its |an? )?(?:\w+ ){0,2}limit\b",
        code_class="5",
        unless=r"mailbox (?:is )?full|over quota|mailbox quota|storage|\bsize\b|\blength\b|header|"
        r"\blines?\b",
    ),
    Rule(
        RuleId.smtp_rate_limited,
        Category.throttled,
        "the server is limiting the rate or number of connections",
        "The server is rate-limiting this source: reduce how many devices send at once, or "
        "wait and try again later.",
        text=rf"{vocabulary.TOO_MANY}|rate ?limit|throttl|exceeded|(?:limit|quota|max\w*)\b(?:[^.;]|\.(?=\w)){{0,20}}?\breached|slow down|\bslower\b|too much mail|"
        r"zu viele|trop de (?:connexions|messages|mails|destinataires)|demasiad[oa]s|troppe|"
        r"excessive "
        r"(?:volume|mail|messages|connections)|high volume|limits? (?:for|on) how many|"
        r"(?:messages|recipients|connections) (?:per|this|an) (?:hour|day|minute)|unusual rate|"
        r"messages? per (?:connection|session)|\bto many (?:mails|messages|e-?mails)\b|"
        r"in the last \d{1,4} (?:seconds|minutes|hours)\b",
        code_class="4",
        # "Error: timeout exceeded" is the session's clock; an untrusted IP is its reputation
        unless=r"time ?out|time limit|untrusted",
    ),
    Rule(
        # RFC 3463: X.1.x are address statuses; X.2.1/X.2.2 the mailbox is disabled or full.
        RuleId.smtp_recipient_status,
        Category.recipient_rejected,
        "the server refuses the recipient (its status code says the address is the problem)",
        "The server refuses the test recipient (an address status code): check the 'to' address, and that the "
        "mailbox exists and is not full.",
        stages=(Stage.rcpt,),
        enhanced=("5.1.0-5.1.6", "5.1.9-5.1.99", "5.2.1-5.2.2", "4.2.2"),
    ),
    # -- protocol -------------------------------------------------------------------------
    Rule(
        RuleId.smtp_hello_first,
        Category.protocol_error,
        "the server wants EHLO before this command",
        "The server asked for EHLO although fleet sent one (and sends it again after STARTTLS, "
        "as RFC 3207 requires): an SMTP-inspecting firewall between the site and {host}, or "
        "the server, loses the session state; turn off the firewall's SMTP inspection, else "
        "tell the server's administrator.",
        text=rf"send (hello|{vocabulary.HELO})( command)? first|"
        rf"(?:{vocabulary.HELO}|hello)(?:/{vocabulary.HELO})? (?:command )?(?:is )?(?:required|needed)",
    ),
    # -- words that say what was refused, with no cause fleet knows ------------------------
    Rule(
        # At DATA the thing refused is the message: "Message rejected", "Message Filtered".
        RuleId.smtp_message_refused,
        Category.message_rejected,
        "the server refuses the message (it gives no more specific reason)",
        "The receiver refused the test message itself without saying why: read the reply; "
        "try a small scan with a plain subject, and ask the administrator of {host} which "
        "filter refused it.",
        text=r"\b(?:message|content)s? (?:was |has been |is )?(?:rejected|refused|"
        r"not accepted|filtered|blocked)|"
        # AOL "5.2.1 : AOL will not accept delivery of this message."
        r"\b(?:will not|does not|cannot|can ?not) accept (?:the )?delivery of (?:this|the|your) "
        r"message\b",
        stages=(Stage.data,),
        code_class="5",
        # RFC 3463's own text for X.7.1 names no cause
        unless=r"destination domain|delivery not authori[sz]ed",
    ),
    Rule(
        # A 4xx that refuses the recipient and says to come back ("Recipient address
        # rejected: Policy Rejection- Please try later", "unverified address: Address
        # verification in progress"): a deferral with no reason fleet can name.
        RuleId.recipient_deferred,
        Category.temporary_failure,
        "the server deferred the recipient for now (it gives no reason)",
        "{host} deferred the test recipient and asks to try later: run the site again later; "
        "if it persists, read the reply text.",
        text=r"\brecipient\b[^\n]{0,200}?\b(?:try (?:again )?later|please retry|in progress|"
        r"temporar\w*)",
        code_class="4",
        stages=(Stage.rcpt,),
        # a cause named beats "try later" ("Recipient address rejected: Domain not found")
        unless=r"not found|unknown|does not exist|no such|invalid|\bfull\b|quota|"
        r"disabled|inactive|suspended|gr[ae]y ?list",
    ),
    Rule(
        # At RCPT the address refused is the recipient's (the sender's is refused at MAIL,
        # or named as such: see smtp.sender_rejected).
        RuleId.smtp_rcpt_address_refused,
        Category.recipient_rejected,
        "the server refuses the recipient address (it gives no more specific reason)",
        "The server refuses the test recipient's address without saying why: check the 'to' "
        "address, and that {host} receives mail for its domain.",
        text=r"^#?(?:[245]\.\d{1,3}\.\d{1,3} )?(?:<[^<>\s]{1,255}>:? |\S{1,255}@\S{1,255}:? )?"
        r"(?:the )?(?:recipient )?address(?:es)? (?:is |was )?(?:rejected|refused|not accepted|"
        r"invalid)|(?:restricted|invalid|illegal) characters? in (?:the )?(?:local part|address)",
        stages=(Stage.rcpt,),
        # the words after it name the sender: theirs; "for policy reasons" names no cause, nor
        # a policy server's bare verdict after Postfix's prefix (iRedAPD "Recipient address
        # rejected: Not authorized")
        unless=r"\bsender\b|"
        + vocabulary.MAIL_FROM
        + rf"|{vocabulary.REJECTED} for policy reasons|"
        + vocabulary.BARE_POLICY_VERDICT,
    ),
    Rule(
        # RFC 5321's "Service not available" (421) sent as a 5xx with no reason: the server
        # is not taking mail now, which is not a refusal of this site.
        RuleId.smtp_service_unavailable,
        Category.temporary_failure,
        "the server says its service is unavailable for now",
        "{host} says its mail service is unavailable (its own state, no reason given about "
        "this site): run the site again later; if it persists, ask the administrator of {host}.",
        text=r"service (?:is )?(?:currently |temporarily )?(?:unavailable|not available)",
        # a 554 greeting is RFC 5321's "no SMTP service here" for this client: a refusal
        stages=(
            Stage.ehlo,
            Stage.starttls,
            Stage.ehlo_tls,
            Stage.auth,
            Stage.mail,
            Stage.rcpt,
            Stage.data,
        ),
        code_class="5",  # a 4xx says so already, and its finding names the code
        unless=r"no smtp service|\bptr\b|blocked|listed|denied|refused",
    ),
)
