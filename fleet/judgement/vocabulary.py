"""Word families the rules share: a blocklist's words, and the subjects of a refusal (the
nouns of each family and the words of refusal)."""

from __future__ import annotations

from fleet.judgement.evidence import DOMAIN

# Synonym groups the rules spell alike (one name, so that a new spelling is added once).
HELO = r"(?:e?helo|ehlo)"  # the greeting command, as servers name it ("HELO", "EHLO", "EHELO")
TOO_MANY = r"(?:too many|excessive)"  # a count over a limit
REJECTED = r"(?:rejected|refused|denied)"  # the words of refusal servers use alike
EXCEEDED = r"(?:exceeded|reached)"  # a limit gone over

# Words of a blocklist rejection (an IP or a domain listing: see `names_the_ip`).
LISTING_TEXT = (
    r"blocked using|spamhaus|listed (?:at|on|in|by) |\bRBL|\bDNSBLs?\b|black ?list|"
    r"(?<!allow )(?<!allow/)block ?list|is listed\b|are listed\b|found (?:in|on) (?:one or "
    r"more |a )?(?:\S+\.(?:org|net|com)|dnsbl|rbl|block|black)"
)

# The receiver's own blocklist lookup failing (an error, a timeout, a SERVFAIL): nothing is known
# about the site's IP, nothing is listed, nothing to delist (#16, pattern 2). Either order: the
# list first ("RBL lookup timed out", "blocked using bl.spamcop.net; DNS error", rblsmtpd's
# "temporary RBL lookup error") or the failure first ("DNS error doing RBL lookup",
# "Temporary failure in DNSBL query", "unable to query the RBL"); sendmail's dnsbl feature names
# no list word, only the zone ("Temporary lookup failure of 192.0.2.10 at zen.spamhaus.org").
_LIST_NOUN = (
    r"(?:rbls?|dnsbls?|dns ?bls?|dnsrbl|rhsbls?|uribl|surbl|(?:dns[- ]?)?(?:block|black) ?lists?|"
    r"spamhaus|spamcop|blackhole)"
)
_LOOKUP_FAILED = r"(?:errors?|failures?|failed|timeout|timed out|servfail)"
BLOCKLIST_LOOKUP_FAILED = (
    r"\b(?:blocked using|listed (?:at|in|on|by)|"
    + _LIST_NOUN
    + r")\b[^\n]{0,80}?\b(?:dns|lookups?|"
    r"quer(?:y|ies)|checks?|checking|resolution)[:;,]? " + _LOOKUP_FAILED + r"\b|"
    r"\b(?:dns|lookup|query|resolver|temporary)? ?"
    + _LOOKUP_FAILED
    + r" (?:in|doing|during|while|on|"
    r"of|with|when|for|performing|checking|querying|looking up|resolving|contacting) (?:the |an? |its )?(?:[\w.-]{1,40} )?"
    + _LIST_NOUN
    + r"\b|"
    r"\b(?:unable|failed|could not|cannot|can not) (?:to )?(?:query|check|look ?up|contact|reach|"
    r"resolve) (?:the |an? |its )?(?:[\w.-]{1,40} )?" + _LIST_NOUN + r"\b|"
    r"\b" + _LIST_NOUN + r"[:;,]? (?:temporary |temporarily )?" + _LOOKUP_FAILED + r"\b(?!\.\w)|"
    r"\btemporary lookup failure of \S{1,255} at \S{1,255}"
)

# A policy server's bare verdict after Postfix's "Recipient address rejected:" prefix (iRedAPD
# "Not authorized"): no cause and no recipient evidence (#16, pattern 6: unrecognised)
BARE_POLICY_VERDICT = (
    # (Postfix access(5)'s own "Access denied" is a map keyed by the recipient: the recipient's)
    r"address "
    + REJECTED
    + r": not authori[sz]ed\.?(?=\s*(?:$|[\[(]))"  # (a queue tag is no cause)
)


# ---- the subject of a refusal: nouns of each family and words of refusal ------------------
# (see the "subject" rules at the end of RULES). Every window is bounded: linear on hostile text.
REFUSED = (
    r"(?:rejected|refused|denied|blocked|banned|forbidden|prohibited|unacceptable|"
    r"not (?:allowed|permitted|accepted|authori[sz]ed|welcome|acceptable))"
)
DOMAIN_UNKNOWN = (
    r"\b(?:host|domain)(?: ?name)?\b(?:[^.;:!]|\.(?=\w)){0,30}?\b(?:not found|unknown|unreachable|"
    r"not reachable|(?:does not|do not) exist|must exist|not resolv\w*|unresolv\w*|"
    r"does not (?:currently )?resolve|does not have (?:an?|any) (?:valid )?"
    r"(?:MX|DNS|A) record|"
    r"(?:is )?(?:a )?dead\b|(?:does not|will not) (?:accept|receive) (?:e-?)?mail)|"
    r"\bunknown (?:host|domain)\b|\bunresolv\w* (?:[\w.-]{1,20} )?(?:host|domain)\b|"
    r"\b(?:invalid|bogus|non-?existent) (?:host|domain)(?: ?name)?\b|\bhost unknown\b|\bno such domain\b|name or service not known|\bunroutable\b|"
    r"\bno route (?:to|for)\b|\bno (?:valid )?MX\b|\bMX records? (?:for|not)\b|"
    r"\bno mail hosts? for\b|"
    # RFC 1846's 521: "example.com does not accept mail"
    r"mail receiving disabled|" + DOMAIN + r" does not accept (?:e-?)?mail\b"
)
# The envelope's MAIL FROM as a noun: the command in capitals, or "mail from" followed by what
# only the envelope sender has (an address, a colon, "address", "domain"). "receive mail from
# external senders", "Mail from this country" are ordinary words, not the sender.
MAIL_FROM = (
    r"(?:(?-i:\bMAIL ?FROM\b)|\bmailfrom\b|\bmail ?from(?=:|\s{0,3}(?:<|\[|address|domain|command|"
    r"[^\s@]{1,64}@)))"
)
SENDER_NOUN = (
    r"\b(?:sender|"
    + MAIL_FROM
    + r"|envelope[- ]from|envelope sender|return[- ]path|reverse[- ]path|"
    r"from[- ](?:address|domain)|from: ?(?:domain|address)|exp[eé]diteur|[eé]metteur|originator|"
    r"bounce address|your (?:e-?mail )?domain|"
    # the sender in the languages providers answer in (de, es, it, pt, ru)
    r"absender|remitente|mittente|remetente|отправител\w*)\b"
)
SENDER_SUBJECT = (
    SENDER_NOUN + r"(?:[^.;:!]|\.(?=\w)){0,40}?\b(?:" + REFUSED + r"|invalid[ea]?|unknown|inconnu|"
    r"not (?:found|known|valid|verified|approved|pre-?approved|registered|on|in)\b|unverif\w*|"
    r"(?:fail\w*|cannot|could not|unable) (?:to )?(?:be )?verif\w*|bogus|forged|fake|"
    r"spammer|must (?:be|exist|have|use|match|belong)|required|restricted|"
    r"ung[üu]e?ltig|unbekannt|no v[aá]lido|non valido|inv[aá]lido|desconocido|sconosciuto|"
    r"отклон\w*|не найден|неизвест\w*|недопуст\w*|запрещ\w*|"
    r"(?:has|have) no (?:valid )?(?:A|AAAA|MX|DNS)\b)|"
    # the adjective before the noun: "unresolvable RFC.5321 from domain"
    r"\b(?:invalid|bad|bogus|illegal|unknown|forged|fake|unverified|unresolvable|unresolved|"
    r"unroutable|non-?existent) (?:[\w.-]{1,20} )?(?:mail ?from|from|sender|envelope|"
    r"return[- ]path|reverse[- ]path)\b|\bbatv\b|backscatter|"
    r"\brestricted to (?:the |a |your )?(?:sending|sender|from) domain\b|"
    r"\b(?:no|unsigned) (?:third-party )?dsns?\b|returned mail not accepted|"
    r"purported responsible address|fully[- ]qualified (?:e-?mail )?address (?:is )?required|"
    r"sending (?:this )?from a different address|\bblock(?:ed)? senders?\b|"
    r"\bblock policy for (?:the )?(?:envelope|header) from\b|\bsenders? (?:block ?)?list\b"
)
# A sender (address) on the receiver's own list: not a DNS blocklist, not the IP.
SENDER_LISTED = (
    r"(?:" + SENDER_NOUN + r"|\be-?mail address\b)(?:[^.;:!]|\.(?=\w)){0,30}?(?:\bblack ?listed|"
    r"\bblock ?listed|\b(?:in|on) (?:my|our|the|a) (?:local )?(?:black|block) ?list)|"
    # a listed user, sender or address is that account's block, not the IP's ("Client host
    # rejected: Blacklisted user: user@example.com", a Postfix access map keyed by address)
    r"\b(?:black|block) ?listed (?:user|sender|e-?mail address|address|account|from)\b"
)
# An address in a state that only an address has (unknown, invalid, gone). A bare "rejected"
# is not evidence at RCPT, where servers enforce client and sender policy too (#16).
ADDRESS_STATE = (
    r"(?<!IP )(?<!IP-)\b(?:e-?mail )?address(?:es)?\b(?:[^.;:!]|\.(?=\w)){0,30}?\b(?:"
    r"invalid|unknown|not (?:found|known|valid|local|present)|does not exist|"
    r"(?:could not|cannot) be found|no longer (?:valid|in use|active|accepts?)|wrong)\b|"
    r"\b(?:invalid|unknown|bad|illegal|non-?existent|wrong|inactive|disabled|deactivated|"
    r"closed|expired|suspended) (?:e-?mail )?address|"
    # RFC 5321's own 553 text
    r"\bmailbox name (?:is )?(?:not allowed|invalid)"
)
ADDRESS_REFUSED = (
    r"(?<!IP )(?<!IP-)\b(?:e-?mail )?address(?:es)?\b(?:[^.;:!]|\.(?=\w)){0,30}?\b"
    + REFUSED
    + r"|"
    + ADDRESS_STATE
)
RECIPIENT_NOUN = (
    r"\b(?:recipients?|addressee|destinataire|destinatario|user ?names?|(?<!our )(?<!other )"
    r"users?|mail ?box(?:es)?|mail ?folder|accounts?|local[- ]part|rcpt|person|alias|"
    # the same nouns in the languages European providers answer in (fr, de, es, it, pt)
    r"utilisateur|usuario|usu[aá]rio|utente|benutzer|nutzer|empf[aä]e?nger|postfach|konto|"
    r"bo[iî]te|buz[oó]n|casella|caixa|destinat[aá]rio|"
    r"получател\w*|пользовател\w*|ящик\w*|адресат\w*)\b"
)
RECIPIENT_SUBJECT = (
    # ("reason unknown" and "an unknown reason" are about the reason, not the recipient)
    RECIPIENT_NOUN + r"(?:[^.;:!]|\.(?=\w)){0,40}?\b(?:invalid|(?<!reason )(?<!an )unknown|inconnu|"
    r"not (?:found|known|valid|active|available|local|exist\w*|registered|subscribed|present)|"
    r"(?:could not|cannot) be found|"
    r"(?:does not|do not|no|may not|might not) (?:exist|have)|non-?existent|unavailable|inactiv\w*|"
    r"disabled|suspended|terminated|locked|archived|expired|deactivated|closed|frozen|missing|"
    # the recipient refused as such, or refusing (sisimai's UserUnknown and Filtered lexicon:
    # "recipient is not accepted", "recipient not ok", "can't accept user", "recipient refuses
    # to accept your mail", "user refuses to receive this mail")
    r"not (?:accepted|ok)|refuses? (?:to )?(?:accept|receive)|undeliverable|unavaiable|"
    r"archiv\w*|has been replaced by|"
    r"wrong|illegal|unrout\w*|no longer|(?:has )?moved|over ?quota|full|"
    r"unbekannt|existiert nicht|nicht gefunden|gesperrt|deaktiviert|voll|desconocido|no existe|lleno|"
    r"sconosciuto|inesistente|piena|desconhecido|n[aã]o existe|cheia|inexistante?|pleine|"
    r"не найден\w*|не существует|неизвест\w*|переполнен\w*|заблокирован\w*|отключ\w*|"
    r"d[eé]sactiv[eé]e?)\b|"
    r"\b(?:no such|unknown|invalid|non-?existent|inexistent|illegal|disabled|inactive|"
    r"suspended|archived|banned|blocked) (?:\w{1,20} )?" + RECIPIENT_NOUN + r"|\bthere is no one\b|"
    r"\bno existe (?:\w{1,10} )?(?:usuario|persona|destinatario|buz[oó]n)\b|"
    r"\b(?:cannot|can not) accept (?:this )?(?:user|recipient|address)\b|"
    r"\bnot (?:allowed|permitted|authori[sz]ed) to receive (?:e-?)?mail\b|"
    r"\bnot (?:currently )?(?:being )?accept(?:ed|ing) (?:for|by) (?:this|the) (?:mail ?box|"
    r"recipient|user|account|address)\b|"
    r"\bblocked by (?:the )?recipient\b|\brecipients? (?:is |are )?only accepting mail from\b|"
    r"\bnessun (?:utente|destinatario)\b|\badresse\b(?:[^.;:]|\.(?=\w)){0,30}?\bnicht gefunden\b|"
    r"\bnot an? (?:known|valid|active|local|registered) (?:user|address|recipient|mailbox|"
    r"account)\b|\bno (?:account|mail ?box|user|recipient)s? (?:by that name|available|here)\b|"
    r"\bno valid recipients?\b|\brecipient ?notfound\b|"
    r"\brecipient'?s? (?:preferences|privacy settings)\b|"
    r"\bbad ?(?:rcpt|recipient) ?to\b|\bvalid ?rcpt ?to\b|\bbadrecipientto\b|"
    r"\bнет (?:такого|такой) (?:пользовател\w*|адресат\w*|ящик\w*|получател\w*)|"  # noqa: RUF001 (Russian)
    r"\benvelope recipient (?:has been |is |was )?(?:denied|rejected|refused)"
)
NOT_THE_RECIPIENT = (
    r"\bsender\b|" + MAIL_FROM + r"|envelope[- ]from|return[- ]path|your (?:account|ip|host|server|"
    r"network)|authenticat|log ?in|password|\brelay|\bspam|\bIP\b"
)
MESSAGE_SUBJECT = (
    r"\b(?:message|e-?mail|content|body|attachment|letter|data|text)s?\b(?:[^.;:!]|\.(?=\w)){0,40}?\b"
    r"(?:" + REFUSED + r"|filtered|quarantined|flagged|classified as|considered|identified "
    r"as|detected as|deemed|dropped|discarded|unsolicited|suspicious|contains?|reject|refuse|"
    r"block)\b|"
    # what a filter judges a message to be (bulk, inappropriate, a mass mailing)
    r"\binappropriate\b|\bobjectionable\b|\boffensive\b|\bobscene\b|\bmass[- ]?mail\w*|"
    r"\bbulk[- ]?mail\w*|\bdspam\b|\b(?:rejecting|refusing|blocking) (?:\w+ )?(?:message|"
    r"content|mail)|too much (?:mail |message )?data\b|"
    r"\bunsolicited\b|\bbulk\b|\badvertis\w*|\banti-?spam\b|\bphish\w*|\bfraud\w*|\bscam\b|"
    # what the message was sent with or gives away: mailing-list software ("[ACD14] List
    # software not permitted"), a password in the text (Haraka "Credential leak detected")
    r"\b(?:mailing |bulk |mass )?list (?:software|managers?)\b|\bcredentials? leak\w*|"
    r"\bleak(?:ed|ing)? (?:credentials?|passwords?)\b|"
    r"\bmalicious\b|\bexecutable\b|\bbase64\b|\bbinary content\b|improperly[- ]formatted|"
    r"\bline (?:limit|length)\b|\blines? (?:is |are )?too long\b|(?:length|size) exceeds?\b|"
    r"\bexceeds? (?:the )?(?:administrative |maximum |max |policy |allowed )?(?:size|length|"
    r"limit)\b|\btoo (?:large|big|long)\b|\breject, id=|\bour (?:spam )?filters?\b|"
    r"\bfilter(?:ed|ing)\b|"
    # "5.5.2 Invalid data in message" (BMH): the message's data, not a command's syntax
    r"\b(?:invalid|malformed|corrupt\w*|bad|illegal) (?:data|content|body|characters?) in "
    r"(?:the |this |your )?(?:message|mail|e-?mail)\b"
)
# The site's IP, host or network named as refused, or the client itself told it sends spam.
CLIENT_REFUSED = (
    # The IP or the network, refused in any words ("remote server" is the receiver's own
    # name for the server it asked, and a URL's "?ip=" a link: neither is the client) ...
    r"\b(?:(?:sender|sending|client|connecting|source|your|originating|remote) ?(?:ip(?: "
    r"address)?|network)|(?<![\w.?&=/-])ips?(?: address(?:es)?)?|server ip)\b"
    r"(?:[^.;:!]|\.(?=\w)){0,60}?\b(?:blocked|banned|refused|rejected|denied|forbidden|"
    r"not (?:allowed|permitted|accepted|welcome)|black ?listed|abusive|spammer|spam(?:ming)?|"
    r"suspicious|(?:looks?|appears?) (?:\w+ )?like)\b|"
    # ... the host or server only in words of reputation: "your host is not permitted" is a
    # policy fleet cannot name (#16: like "You are not allowed to connect")
    r"\b(?:(?:sender|sending|client|connecting|source|your|originating) ?(?:host|server|"
    r"mail ?server|mta|remote ?host|machine)|remote ?host|mail server at)\b"
    r"(?:[^.;:!]|\.(?=\w)){0,60}?\b(?:blocked|banned|black ?listed|abusive|spammer|"
    r"spam(?:ming)?|suspicious|(?:looks?|appears?) (?:\w+ )?like)\b|"
    r"\b(?:you are|you're|your (?:ip|server|host|network|mail server)(?: is| are| has been)?) "
    r"(?:currently |now )?(?:sending|a source of|known for|sent) (?:\w+ )?(?:spam|unsolicited|"
    rf"junk)|\bcurrently sending spam\b|\bspams? from your\b|\b{TOO_MANY} (?:spams|spam messages|unwanted messages)\b|"
    r"\b(?:not|no longer) (?:currently )?accept(?:ing)? (?:e-?mail |mail |connections? |messages? )?"
    r"from your (?:mail server's |server's )?(?:ip|host|server|network|mail server)\b|\b(?:banned|blocked|bad|black ?listed|abusive) (?:sending |sender |"
    r"client |source |connecting )?ips?\b|forbidden (?:by|for|to) your ip\b|"
    r"\b(?:traffic|mail|connections?|messages?) (?:is |are )?not accepted from (?:this|your) ip\b|"
    # Outlook.com's AS900: "messages from [192.0.2.1] weren't sent"
    r"\bmessages from \[?(?:\d{1,3}\.){3}\d{1,3}\]? were not sent\b|"
    # "Mail from 192.0.2.1 refused": the IP itself named as the source refused
    r"\b(?:mail|messages?|connections?) from \[?(?:\d{1,3}\.){3}\d{1,3}\]?,? (?:is |are |was |were )?"
    r"(?:refused|rejected|blocked|denied|not accepted)\b|"
    # "connection refused from [192.0.2.1]": the client's IP named as refused
    r"\bconnections? (?:refused|rejected|denied|blocked|not accepted) (?:from|for) \[?(?:\d{1,3}\.){3}"
    r"\d{1,3}\b|"
    r"\b(?:access|connections?) from (?:ip|your)\b(?:[^.;:!]|\.(?=\w)){0,40}?(?:blocked|refused|denied|"
    r"not accepted)"
)
