"""Rules that read the causes about who sends: the receiver's own faults (`RECEIVER_FAULTS`,
read first of all), then (`IDENTITY`, read after `named_families`) listed domains, reverse DNS,
the EHLO name, loops and headers, SPF/DKIM/DMARC, limits that name the IP, and the IP's
reputation. A cause named here wins over the words around it."""

from __future__ import annotations

from fleet.judgement import remedies, vocabulary
from fleet.judgement.rule import Rule
from fleet.judgement.rule_ids import RuleId
from fleet.results import Category, Stage

# A command the server does not know or implement ("5.5.2 Error: command not recognized" to
# EHLO): a protocol matter, whatever the command's argument.
_COMMAND_UNKNOWN = r"not (?:recogni[sz]ed|implemented|supported)|unrecogni[sz]ed|unknown command"

RECEIVER_FAULTS: tuple[Rule, ...] = (
    # -- the receiver's own temporary fault: before the words it is wrapped in ("Helo command
    # rejected: Server configuration error" is Postfix's 4.3.5 for its own broken lookup table;
    # "DKIM signing failed" is the receiver's signer, not the sender's authentication).
    Rule(
        RuleId.receiver_own_error,
        Category.temporary_failure,
        "the receiving server reports an error in its own setup, not a verdict on this site",
        "{host} reports a fault of its own (configuration, lookup table or signer): run the "
        "site again later; if it persists, tell the administrator of {host}, with the reply text.",
        # its own blocklist lookup failing, in any order of words ("blocked using bl.spamcop.net;
        # DNS error; try again later", "DNS error doing RBL lookup"): no listing, nothing to delist
        text=vocabulary.BLOCKLIST_LOOKUP_FAILED
        + r"|(?:server|system|mail ?server|host) config(?:uration)? (?:error|problem|issue)|"
        # its own mail system full (X.3.1: "5.0.0 Mail system full")
        r"\bmail ?system (?:is )?full\b|"
        r"temporary lookup failure|"
        r"insufficient system (?:storage|resources)|"
        # its own resources used up ("4.3.4 allocated resources exceeded")
        r"\b(?:allocated|system|server|internal) resources? (?:are |is |have been )?"
        r"(?:\w+ )?(?:exceeded|reached|exhausted|unavailable)|"
        r"(?:DKIM|ARC) (?:signing|signer|signature creation) (?:failed|error)|"
        r"(?:failed|unable) to DKIM[- ]sign|"
        # its own login backend ("authentication failed: Connection lost to authentication
        # server" is Dovecot's SASL service gone, not the password)
        # its own disk (not the recipient's quota)
        r"(?:insufficient|not sufficient|not enough|no) (?:free )?disk ?space|"
        r"no space left on device|"
        r"(?:connection lost|unable to connect|could not connect|cannot connect|no connection) "
        r"to (?:the )?(?:authentication|auth|sasl|ldap|database|lookup) (?:server|service|"
        r"backend|daemon)|(?:authentication|auth|sasl) (?:server|service|backend) (?:is )?"
        r"(?:unavailable|not available|down|not responding)",
    ),
    # -- the receiver's own fault: before anything that reads a list's name --------------
    Rule(
        RuleId.receiver_dnsbl_open_resolver,
        Category.receiver_fault,
        "the receiver's own blocklist lookups fail (it queries {list} through a public "
        "resolver): not the site's reputation",
        remedies.RECEIVER_FAULT_FIX,
        text=r"open resolver|public (?:dns )?resolver|127\.255\.255\.\d+|spamhaus\.org/returnc|"
        r"excessive number of queries|blocklist quer(?:y|ies) (?:was |were )?refused|"
        # its resolver or its Spamhaus DQS key refused by the list: still its own setup
        r"\b(?:dns )?resolver (?:is |was |has been )?(?:blocked|refused|banned|rate[- ]limited)|"
        r"\bDQS key\b|\b(?:invalid|expired|unregistered) (?:dqs|datafeed|data feed) key\b|"
        # URIBL refuses queries from big public resolvers and answers 127.0.0.1 ("Query
        # Refused", uribl.com/refused.shtml): the receiver's resolver, not a listing
        r"\bquery refused\b|uribl\.com/refused|\bquer(?:y|ies) (?:was |were |is )?(?:refused|"
        r"blocked|denied) by\b",
    ),
    Rule(
        # A receiver that still queries a blocklist that has shut down: some answered "listed"
        # for every address when they closed, and say so in their TXT ("the server you are
        # sending to is misconfigured"). Nothing is listed. (A list's name alone is no
        # evidence: replies from when it was live named it too.)
        RuleId.receiver_dnsbl_defunct,
        Category.receiver_fault,
        "the receiver uses a blocklist that has shut down ({list}): not the site's reputation",
        remedies.RECEIVER_DEFUNCT_LIST_FIX,
        text=r"(?:server|mail server|system|host) you are sending to is misconfigured|"
        r"(?:block|black) ?list (?:has been |is |was )?(?:shut ?down|closed|defunct|discontinued|"
        r"no longer (?:active|operat\w+|exists?|maintained))|"
        r"(?:block|black) ?list\b(?:[^.;]|\.(?=\w)){0,40}\b(?:ceased|stopped|ended) operati\w+",
        # a live list named as well may have listed the IP for real
        unless=r"spamhaus|spamcop|barracuda|abuseat|mailspike|uceprotect|psbl",
    ),
)

IDENTITY: tuple[Rule, ...] = (
    # -- a domain is listed, not the IP: before the IP lists ------------------------------
    Rule(
        RuleId.dnsbl_domain_listed,
        Category.domain_reputation,
        "{listed_domain} is on a domain blocklist ({list}), not the site's IP",
        remedies.DOMAIN_LISTED_FIX,
        text=r"\bdbl\b|\buribl\b|\bsurbl\b|\bdomain block ?list|\brhsbl\b|"
        # rfc-ignorant.org lists domains (no working postmaster/abuse), not IPs
        r"\brfc-ignorant\b|correct (?:your )?HELO and DNS MX settings|"
        # Postfix's reject_rhsbl_sender/_helo: a domain list, whichever list it names
        r"\b(?:sender address|helo command) \[[^\]]{1,255}\] blocked using\b|"
        r"\b(?:black ?listed|block ?listed|listed) (?:url|uri|link|domain)s?\b|"
        # the sender's address or domain on the receiver's own list (Symbiosis "Your email
        # address or domain is locally blacklisted")
        r"\b(?:e-?mail )?address or domain (?:is |was |has been )?(?:locally )?(?:black ?listed|"
        r"block ?listed|listed)\b|"
        r"(?:mail ?from|helo|ehlo|sender|envelope|from|sending|your|the) domain\b(?:[^.;]|\.(?=\w)){0,80}?"
        r"\b(?:is |was |has been )?(?:listed|black ?listed|block ?listed|on (?:our|a|the|my) "
        r"(?:local )?(?:block|black) ?list)|"
        r"domain (?:\S+ )?(?:is |was |has been )?(?:listed|black ?listed|block ?listed|on (?:our|a|"
        r"the|my) (?:local )?(?:spam|block|black|deny|ban) ?list)|"
        # Apple: "rejected due to having a domain present in the spamhaus" (sisimai Rhost)
        r"\bdomain\b(?:[^.;]|\.(?=\w)){0,40}?\bpresent (?:in|on)\b|"
        r"(?:url|uri|link|web ?site)s?\b(?:[^.;]|\.(?!\s+(?-i:[A-Z]))){0,80}?\b(?:listed|black ?listed|"
        r"block ?listed)|"
        r"reputation of the sending domain|domain reputation|\(domain[- ]based\)|"
        r"(?:helo|ehlo) (?:name|host) "
        r"(?:is )?(?:listed|black ?listed|block ?listed)|\bCDRBL\b|"
        r"unsolicited (?:e-?mails?|mails?|messages?) (?:originating from (?:your|the) DKIM domain|containing one of (?:your|the) "
        r"URL domains)|(?:DKIM|URL|sending|sender|your|from|mail ?from) domain\b(?:[^.;]|\.(?=\w)){0,60}"
        # (or none yet: Spamhaus's DQS milter "sender domain has no established reputation")
        r"(?:poor|low|bad|no|no established|insufficient) reputation",
    ),
    # -- reverse DNS, at any stage --------------------------------------------------------
    Rule(
        # Gmail and Microsoft: "the sending IP(v6) address must have a reverse DNS record"
        RuleId.rdns_missing_ptr_code,
        Category.reverse_dns,
        "the receiver refuses {ip}: it has no reverse DNS (PTR) name, or one that does not match",
        remedies.REVERSE_DNS_FIX,
        enhanced=("5.7.25", "4.7.25"),
    ),
    Rule(
        # Forward-confirmed reverse DNS (Haraka's fcrdns plugin, Postfix's
        # reject_unknown_client_hostname): the PTR name must resolve back to the IP.
        RuleId.rdns_fcrdns,
        Category.reverse_dns,
        "the receiver refuses {ip}: its reverse DNS (PTR) name does not resolve back to it",
        remedies.REVERSE_DNS_FIX,
        text=r"\bfcrdns\b|forward[- ]confirmed(?: reverse)?|\biprev\b",
    ),
    Rule(
        RuleId.rdns_missing_ptr,
        Category.reverse_dns,
        "the receiver refuses {ip}: it has no reverse DNS (PTR) name, or one that does not match",
        remedies.REVERSE_DNS_FIX,
        text=r"reverse[- ](?:dns|hostname|host name|lookup|name|record|resolution|resolve)|"
        r"\brdns\b|\bptr\b|find your (?:host ?name|reverse)|reverse look ?(?:up|name)|"
        r"\bno (?:dns )?reverse (?:dns )?for\b|"
        r"(?:can ?not|unable to|could not|failed to) (?:find|resolve|lookup|look up) "
        r"(?:your |the )?(?:host ?name|client ?host ?name|name for your (?:ip|address))|"
        r"ip name (?:lookup|possibly forged)|host ?name does not match|"
        r"no (?:dns )?(?:host ?name|name) (?:for|found for) (?:your|the) (?:ip|address)|"
        r"(?:ip|address) (?:does not|must) resolve|unknown client host|"
        # sendmail's require_rdns ("451 4.1.8 Client IP address <ip> does not resolve", "451
        # 4.1.8 Possibly forged hostname for <ip>"): the client's IP named, then its state
        r"\bclient (?:ip(?: address)?|address) \[?[0-9a-f.:]{3,45}\]? (?:does not|did not|could not) "
        r"resolve\b|"
        r"\bpossibly forged host ?name\b|"
        # the client's address that does not resolve to a name ("Cannot resolve your address")
        r"(?:can ?not|unable to|could not|failed to) (?:resolve|reverse[- ]resolve) "
        r"(?:your|the client'?s?|the sending) (?:ip )?address\b|"
        rf"client host {vocabulary.REJECTED}: cannot find|"
        r"\byour host ?name (?:does not|did not|could not|cannot) (?:be )?resolve|"
        r"(?<!helo )(?<!ehlo )\bhost ?name lookup failed|"
        # Gmail: "the corresponding forward DNS entry does not point to the sending IP"
        r"forward (?:dns|lookup|entry|record)\b(?:[^.;]|\.(?=\w)){0,30}does not (?:point|match|"
        r"resolve)",
        # Haraka "HELO host does not match rDNS": the name is what is refused
        # (the sender address's domain that does not resolve is the sender's, not the PTR)
        unless=rf"\b{vocabulary.HELO} (?:host|name|hostname)\b(?:[^.;]|\.(?=\w)){{0,20}}does not match|"
        r"domain of sender|sender (?:e-?mail )?(?:address|domain) does not",
    ),
    # -- the EHLO name ------------------------------------------------------------------
    Rule(
        RuleId.m365_bad_helo,
        Category.helo_rejected,
        "the server refuses the EHLO name {ehlo_name}",
        "The server refuses the EHLO name {ehlo_name} (5.7.506: it looks like the server's own "
        "name, a spambot trait): set the copier's host name or EHLO name to its own "
        "fully-qualified name, never the server's; then set the same ehlo_name in the inventory.",
        enhanced=("5.7.506",),
    ),
    Rule(
        # Before any command, the only name a server can look up is the client IP's.
        RuleId.rdns_lookup_at_greeting,
        Category.reverse_dns,
        "the receiver refuses {ip}: it has no reverse DNS (PTR) name, or one that does not match",
        remedies.REVERSE_DNS_FIX,
        text=r"\bDNS\b(?:[^.;]|\.(?=\w)){0,20}(?:look-?up|lookup|resolution)|(?:look-?up|lookup) (?:of your "
        r"(?:ip|address) )?failed",
        stages=(Stage.banner,),
    ),
    Rule(
        RuleId.helo_refused,
        Category.helo_rejected,
        "the server refuses the EHLO name {ehlo_name}",
        remedies.HELO_FIX,
        text=rf"helo command {vocabulary.REJECTED}|(?:invalid|bad|illegal|forged|malformed|bogus) "
        rf"(?:{vocabulary.HELO}|hello)|(?:{vocabulary.HELO}|hello)(?:/{vocabulary.HELO})? (?:name|hostname|host name|host|"
        r"argument|domain|string|greeting|ip literal|address literal|literal)s?\b"
        r"(?!(?:[^.;]|\.(?=\w)){0,40}\blisted)|"
        # Haraka helo.checks: "Invalid address format in HELO", "HELO is dynamic"
        r"(?:invalid|bad|illegal|malformed|bogus|wrong)\b[\w ]{0,30}\b(?:in|for) (?:the |your )?"
        rf"{vocabulary.HELO}\b|\b{vocabulary.HELO} (?:is|looks|appears) (?:to be )?(?:dynamic|forged|"
        rf"invalid|a bare ip|an ip|not)|\b{vocabulary.HELO} not (?:allowed|accepted|permitted)|"
        r"(?:fully[- ]qualified|fqdn) (?:host ?name|domain name)|not (?:a )?(?:fully[- ]qualified|fqdn)|"
        rf"syntactically invalid {vocabulary.HELO}|{vocabulary.HELO} (?:rejected|refused|not accepted|denied)|"
        rf"your {vocabulary.HELO} (?:name |host ?name )?(?:is|was|does)|{vocabulary.HELO} (?:should|must)|"
        # the name given, then its state (Courier "HELO mail.example.com does not exist."), or
        # the name's kind refused (indimail "unable to accept non-FQDN HELO")
        rf"\b{vocabulary.HELO} <?\[?[\w.:-]{{1,253}}\]?>? (?:does not exist|not found|is unknown|"
        r"does not resolve|cannot be resolved|has no (?:A|AAAA|address|DNS|MX)\b)|"
        rf"\bnon-?(?:fqdn|fully[- ]qualified) (?:{vocabulary.HELO}|hello|host ?names?)\b",
        unless=rf"send (?:hello|{vocabulary.HELO})(?: command)? first",
    ),
    Rule(
        # EHLO's only argument is the name: a syntax refusal of EHLO is about the name.
        RuleId.helo_syntax,
        Category.helo_rejected,
        "the server refuses the EHLO name {ehlo_name}",
        remedies.HELO_FIX,
        stages=(Stage.ehlo, Stage.ehlo_tls),
        enhanced=("5.5.2", "5.5.4", "5.1.0-5.1.9"),
        # the command itself unknown to the server is a protocol matter, not the name
        unless=_COMMAND_UNKNOWN,
    ),
    Rule(
        RuleId.helo_syntax_code,
        Category.helo_rejected,
        "the server refuses the EHLO name {ehlo_name}",
        remedies.HELO_FIX,
        stages=(Stage.ehlo, Stage.ehlo_tls),
        code_class="501",
        unless=_COMMAND_UNKNOWN,
    ),
    Rule(
        # At EHLO a refusal that names HELO/EHLO is about the one thing EHLO sends: the name
        # (Haraka's helo.checks: "HELO host has no forward DNS match"). The server's own
        # faults were read above; "send HELO first" and listings are excluded here.
        RuleId.helo_named_at_ehlo,
        Category.helo_rejected,
        "the server refuses the EHLO name {ehlo_name}",
        remedies.HELO_FIX,
        text=rf"\b{vocabulary.HELO}\b",
        stages=(Stage.ehlo, Stage.ehlo_tls),
        # a 4xx that only echoes the command ("Try again later, closing connection. (EHLO)")
        # is a deferral; a 4xx that refuses the name says so (helo.refused, above)
        code_class="5",
        unless=rf"send (?:hello|{vocabulary.HELO})|{vocabulary.HELO} (?:command )?(?:is )?required|"
        r"already|duplicate|listed|"
        # the command itself unknown to the server is a protocol matter, not the name
        r"not implemented|not supported|unrecogni[sz]ed|unknown command",
    ),
    # -- IP reputation ------------------------------------------------------------------
    # -- a header problem is the message's, even when the header is DKIM-Signature --------
    Rule(
        # RFC 3463 X.4.6 "routing loop detected": the message went round; qmail "too many
        # hops, this message is looping", Exim "Too many \"Received\" headers - suspected mail
        # loop", Postfix "mail forwarding loop", OpenSMTPD "Routing loop detected".
        RuleId.smtp_message_loop,
        Category.message_rejected,
        "the server refuses the message as looping (too many hops)",
        "The receiver sees the test message looping (too many Received headers or hops): "
        "look for a forwarding rule or relay that sends mail for the recipient back to where "
        "it came from, and check the copier's relay settings.",
        text=rf"{vocabulary.TOO_MANY} hops|hop count|\blooping\b|(?:mail|routing|forwarding|message) loop|"
        rf"loop detected|{vocabulary.TOO_MANY} ['\"]?(?:received|delivered-to)['\"]? headers",
    ),
    Rule(
        RuleId.smtp_message_header,
        Category.message_rejected,
        "the server refuses the message's headers",
        "The receiver refuses the test message's headers (duplicated, too large, or with raw "
        "8-bit characters): check the copier's From/Subject settings (plain ASCII subject, "
        "one sender) and its firmware; a relay that adds its own signature twice can cause it.",
        text=r"duplicate (?:header|['\"]?[\w-]{1,40}['\"]? header)|(?:duplicate|multiple|too "
        r"many) ['\"]?[\w-]{1,40}['\"]? headers?\b|headers? (?:are |is )?too (?:large|long|big|"
        rf"many)|{vocabulary.TOO_MANY} headers|{vocabulary.TOO_MANY} (?:[\w-]{{1,40}} ){{0,2}}[\w-]{{0,40}}headers?\b|8-?bit (?:data |characters? )?in (?:the )?(?:message )?headers?|"
        r"(?:improper|illegal|invalid) use of 8-?bit|headers? (?:line|field)s? (?:are |is )?too "
        r"(?:long|large)|header\b(?:[^.;]|\.(?=\w)){0,20}not CRLF terminated|(?:header|message) syntax|"
        # a header missing, malformed or not allowed (Gmail: "missing a valid Message-ID
        # header", "a unicode character in a disallowed header", "encoded-word syntax")
        r"\bmessage-id\b|\bdisallowed header|\bencoded-word\b|"
        # several From addresses, which RFC 5322 allows only with a Sender (Microsoft's 5.1.20
        # "Multiple From addresses are not allowed without Sender address")
        r"\bmultiple From(?: addresses| headers)?\b(?:[^.;]|\.(?=\w)){0,40}?\bwithout (?:a )?Sender\b|"
        # a header named as missing ("No Resent-From field given", btconnect)
        r"\b(?:no|missing) (?:[\w-]{1,30} ){0,2}[\w-]{1,30}:? (?:header|field)s?\b(?: (?:given|found|"
        r"present|supplied))?|\brequired headers? (?:not found|missing)\b|"
        r"\bheaders?\b(?:[^.;:]|\.(?=\w)){0,30}?\b(?:missing|"
        r"malformed|not permitted|not allowed|disallowed)\b|\bheaders? error\b|"
        r"\berror in (?:the )?(?:message )?headers?\b",
    ),
    # -- SPF, DKIM, DMARC: the sender's domain, whatever else the reply mentions ------------
    Rule(
        RuleId.ipv6_needs_spf_or_dkim,
        Category.sender_rejected,
        "mail sent over IPv6 must pass SPF or DKIM, and this did not",
        "Mail sent over IPv6 must pass SPF or DKIM (4.7.26) and a copier does not sign with "
        "DKIM: add the site's IPv6 address (ip6:) to the SPF record of {sender}'s domain, or "
        "send over IPv4.",
        enhanced=("4.7.26",),
    ),
    Rule(
        RuleId.sender_authentication,
        Category.sender_rejected,
        "the receiver rejects the sender for SPF, DKIM or DMARC",
        "The sender domain's SPF/DKIM/DMARC does not authorise this source: add ip4:{ip} to "
        "the SPF record of {sender}'s domain, or send through an authorised relay.",
        enhanced=("5.7.23", "5.7.509", "5.7.515", "5.7.26"),
    ),
    Rule(
        RuleId.sender_spf_dkim_dmarc,
        Category.sender_rejected,
        "the receiver rejects the sender for SPF, DKIM or DMARC",
        "The sender domain's SPF/DKIM/DMARC does not authorise this source: add ip4:{ip} to "
        "the SPF record of {sender}'s domain (and publish DMARC), or send through an "
        "authorised relay.",
        # (the openspf.net "Why?" link Postfix's policy services cite is an SPF verdict)
        text=r"\bSPF\b|\bDKIM\b|\bDMARC\b|sender policy framework|openspf\.(?:net|org)/why",
    ),
    Rule(
        # Gmail: "does not have authentication information or fails to pass authentication
        # checks ... blocked": SPF/DKIM in other words, not the content and not a login.
        RuleId.sender_authentication_checks,
        Category.sender_rejected,
        "the receiver rejects the message for failing sender authentication (SPF, DKIM, DMARC)",
        "The message failed the receiver's sender authentication checks (SPF/DKIM/DMARC of "
        "{sender}'s domain): add ip4:{ip} to that domain's SPF record (and publish DMARC), or "
        "send through a relay the domain authorises.",
        text=r"authentication (?:information|checks?|results?)\b|"
        r"(?:fails?|failed) (?:to pass )?(?:sender |message |e-?mail )?authentication\b|"
        r"\bdomain authentication\b|\bauthentication requirements\b|"
        # Gmail: "Unauthenticated email is not accepted from this domain": the domain's
        # SPF/DKIM, not a login
        r"unauthenticated (?:e-?)?mail\b(?:[^.;]|\.(?=\w)){0,40}\bfrom (?:this|the|your|that) domain",
        stages=(Stage.mail, Stage.rcpt, Stage.data),
    ),
    # -- limits that name the IP are still limits -----------------------------------------
    Rule(
        RuleId.smtp_frequency_limited,
        Category.throttled,
        "the server limits how often this site may connect or send",
        "The server limits how often {ip} may connect or send: reduce how many devices send "
        "at once and how often, or wait and try again later.",
        text=r"frequency limit|receiving (?:e-?mail|mail|messages)? ?(?:at a rate|too quickly)|"
        rf"ReceivingRate|{vocabulary.TOO_MANY} (?:connections|sessions|concurrent)|connection (?:rate|limit)",
    ),
    # -- IP reputation ----------------------------------------------------------------------
    Rule(
        RuleId.google_low_reputation_ip,
        Category.ip_reputation,
        "Google rates {ip} as a sender of very low reputation",
        "Google refuses mail from {ip} for its very low reputation: find what sends spam from "
        "that IP and stop it; meanwhile send through authenticated submission on {submission} "
        "or a relay with a clean IP.",
        text=r"low reputation of the sending IP",
    ),
    Rule(
        RuleId.google_unsolicited_rate,
        Category.ip_reputation,
        "Google sees an unusual rate of unsolicited mail from {ip}",
        "Google refuses mail from {ip} for its reputation (unsolicited mail): find the machine "
        "sending spam behind that IP and stop it; meanwhile send through authenticated "
        "submission on {submission} or a relay with a clean IP.",
        text=r"unusual rate of unsolicited (?:e-?mails?|mails?|messages?)|UnsolicitedRateLimitError",
    ),
    Rule(
        RuleId.google_not_authorized_direct,
        Category.ip_reputation,
        "Google does not accept mail sent directly from {ip} (a dynamic or residential range)",
        remedies.IP_REPUTATION_FIX,
        text=r"not authorized to send (?:e-?mails?|mails?|messages?) directly|NotAuthorizedError",
    ),
    Rule(
        RuleId.ip_named_block,
        Category.ip_reputation,
        "the server refuses mail from {ip} for its reputation or its network",
        remedies.IP_REPUTATION_FIX,
        text=r"blocked IP|IP (?:address )?(?:is |has been |was )?(?:temporarily |permanently |"
        r"currently )?(?:blocked|banned|blacklisted|denied)|(?:from|originating from) your IP(?: address)?\b(?:[^.;]|\.(?=\w)){0,80}(?:blocked|"
        r"deferred|refused|rejected|"
        r"unsolicited|spam)|unsolicited (?:e-?mails?|mails?|messages?) originating from your IP|"
        r"host network,? not (?:allowed|permitted)|network (?:is )?not (?:allowed|permitted)|\((?:\w{1,4}:)?(?:BL|RBL|DYN)\)|"
        r"client host \[[^\]]*\] (?:is )?(?:blocked|banned)(?! (?:using|by))|"
        # GMX / WEB.DE explain a refusal by a code in their link: sp, bl = the IP's reputation
        r"postmaster\.(?:gmx|web)\.\w+/\S*[?&]c=(?:sp|bl|bs|bsp)\b|"
        r"smtp server of your (?:ISP|provider)|dynamic (?:ip|address|range|pool)|"
        r"residential|dial-?up|end[- ]user (?:ip|range|address)|dynamically[- ]assigned|"
        r"\bnot (?:allowed|permitted) from this (?:ip |address |network )?range\b|"
        r"mail from your location|your IP is (?:on|in|sending)|block for spam|"
        # the IP's country or region refused (a geographic block is about where the IP is)
        r"\b(?:mail|connections?|messages?|e-?mails?) from (?:your|this|that) (?:country|region|"
        r"location)\b|"
        r"\b(?:your|this|that|the sender'?s?|sending) (?:country|region|geo-?location|location)\b"
        r"(?:[^.;]|\.(?=\w)){0,30}?\b(?:not (?:allowed|accepted|permitted)|blocked|banned|refused|"
        r"denied)\b|\bgeo-?(?:ip|block\w*|fenc\w*)\b|"
        # the client named as an open relay or proxy (indimail "No mail accepted from an open
        # relay (<ip>)"): the IP's standing, found by a relay test or list
        r"(?:is|which is|from|are) an open (?:relay|proxy)\b|spam from your (?:mail )?server|\(IP[- ]based\)|"
        # ... the relay test itself refusing at the greeting ("openrelay check."); a relay
        # refusal that says the client failed the test ("Relaying denied. Sender failed the
        # open relay check") is the relay's, not the IP's
        r"(?<!failed the )(?<!fails the )(?<!failed an )\bopen ?relay check\b|"
        r"messages from \[?[0-9a-f.:]+\]?(?:[^.;]|\.(?=\w)){0,40}(?:permanently deferred|blocked|refused)|"
        r"\bbad (?:client |sending |source )?IP\b|\bopen proxy\b|"
        # a client that may not send direct to MX (a dynamic or end-user source, in other words)
        r"\bnot (?:authori[sz]ed|allowed|permitted) to send (?:e-?mail |mail )?directly\b|"
        # an IP the receiver does not trust yet: its reputation, even worded as a limit
        # ("Received too many messages from a new or untrusted IP", Rackspace)
        r"\buntrusted (?:sending )?(?:IP|source|host|network|sender)\b|"
        # a client that should send through its provider's relay (BMH: "Client host bypassing
        # service provider's mail relay"), a delisting link that names the IP ("antispam
        # .../denyip.php?IP=...")
        r"\bbypass\w* (?:the |your )?(?:[\w'-]{1,30} ){0,3}(?:mail ?)?(?:relay|smarthost|smtp "
        r"server)|\b(?:deny|block|black|spam|rbl)\w{0,20}\.\w{2,5}\?ip=",
        # a sending limit that names the IP is a limit ("Sender ip address denied: You sent to
        # many mails ... in the last 10 minutes")
        # (unless it says the IP is untrusted: its standing, worded as a limit)
        unless=r"^(?![^\n]{0,4096}\buntrusted\b)[^\n]{0,4096}?(?:\bin the last \d{1,4} (?:seconds|"
        r"minutes|hours)\b|\bto{1,2} many (?:mails|messages|e-?mails|connections|sessions|"
        r"recipients)\b)"
        # ... and TLS demanded of the IP is not its reputation
        r"|encrypt|\b(?:tls|starttls|ssl)\b",
    ),
    Rule(
        RuleId.ip_complaints,
        Category.ip_reputation,
        "the server defers or refuses mail from {ip} for complaints about it",
        remedies.IP_REPUTATION_FIX,
        text=r"complaints|unexpected volume",
        ip_evidence=True,
    ),
    Rule(
        RuleId.m365_banned_sending_ip,
        Category.ip_reputation,
        "Microsoft 365 refuses mail from {ip}: the IP is on Microsoft's own blocklist",
        {
            "unauthenticated": (
                "Site IP {ip} is banned by Microsoft (5.7.606): move this copier to "
                "authenticated submission on {submission} with STARTTLS, or relay through a "
                "clean static IP; fix the cause, then delist at https://sender.office.com/."
            ),
            "authenticated": (
                "Site IP {ip} is banned by Microsoft: fix the cause (an infected host, an open "
                "relay), then delist at https://sender.office.com/."
            ),
        },
        enhanced=("5.7.606-5.7.649",),
    ),
    Rule(
        RuleId.m365_banned_sender_ip,
        Category.ip_reputation,
        "Microsoft 365 refuses mail from {ip} as a banned sender",
        "Site IP {ip} is banned by Microsoft (5.7.511): e-mail delist@microsoft.com with the "
        "rejection text and the IP; until then relay through a clean static IP.",
        enhanced=("5.7.511",),
    ),
    Rule(
        RuleId.m365_customer_block_list,
        Category.ip_reputation,
        "the recipient's tenant blocks {ip} with its own block list",
        "The recipient organisation blocks {ip} on its own list (5.7.507, 5.7.513): ask its "
        "admin to remove the IP from their Tenant Allow/Block List or connection filter.",
        enhanced=("5.7.513", "5.7.507"),
    ),
    Rule(
        RuleId.m365_low_reputation_ip,
        Category.ip_reputation,
        "Microsoft 365 does not accept traffic from {ip} (low-reputation range)",
        "Microsoft refuses {ip} (5.7.708, typical of trial tenants on new IPs): contact "
        "Microsoft support for an exception, or send through a reputable relay.",
        enhanced=("5.7.708",),
    ),
    Rule(
        RuleId.outlook_network_block,
        Category.ip_reputation,
        "Outlook.com blocks the network {ip} belongs to",
        "Outlook.com blocks the ISP's range that {ip} is in: send through the ISP's relay or a "
        "reputable relay service instead of directly.",
        text=r"part of their network is on our block ?list",
    ),
    # Before the DNSBL phrases: a "Tenant Allow Block List" blocks recipients, not the IP.
    Rule(
        RuleId.m365_tenant_block_list,
        Category.recipient_rejected,
        "the sending tenant's Tenant Allow/Block List blocks the recipient",
        remedies.TENANT_BLOCK_LIST_FIX,
        enhanced=("5.7.703",),
    ),
    Rule(
        RuleId.m365_tenant_block_list_text,
        Category.recipient_rejected,
        "the sending tenant's Tenant Allow/Block List blocks the recipient",
        remedies.TENANT_BLOCK_LIST_FIX,
        text=r"Tenant Allow ?/? ?Block List",
    ),
    # Vendors' IP reputation services, which never say "DNSBL".
    Rule(
        # "Sender is in my black list", "your e-mail address has been blacklisted": the
        # receiver's own list of senders, no DNS blocklist and not the IP.
        RuleId.subject_sender_listed,
        Category.sender_rejected,
        "the server refuses the sender {sender}: it is on the receiver's own block list",
        "The receiver blocks the sender address {sender} on its own list: send from another "
        "address (the login mailbox or one in your own domain), or ask the recipient's "
        "administrator to remove the block.",
        text=vocabulary.SENDER_LISTED,
        unless=r"spamhaus|\bdbl\b|uribl|surbl|\bIP\b|\bRBL|DNSBL|\bdomain\b",
    ),
    Rule(
        # "192.64.117.97 Your message was rejected for possible spam ... visit <page> for
        # resolution" at MAIL FROM: no content was sent yet, the IP is named and its provider
        # sent to a delisting page, so the verdict is on the IP.
        RuleId.ip_spam_before_content,
        Category.ip_reputation,
        "the server refuses {ip} as a source of spam before any content was sent",
        remedies.IP_REPUTATION_FIX,
        text=r"\b(?:rejected|refused|denied|blocked)\b(?:[^.;]|\.(?=\w)){0,40}?\bspam\b[^\n]{0,200}?"
        r"\b(?:visit|see|go to)\s+(?:https?://|www\.)",
        stages=(Stage.banner, Stage.ehlo, Stage.mail, Stage.rcpt),
        ip_evidence=True,
        unless=r"\bdomain\b|\burl\b|\buri\b",
    ),
    Rule(
        RuleId.dnsbl_blocked_using,
        Category.ip_reputation,
        "the server rejects {ip} because it is listed on {list}",
        remedies.IP_REPUTATION_FIX,
        text=vocabulary.LISTING_TEXT,
        ip_evidence=True,
        # a hedge is no listing ("they may be blacklisted")
        unless=r"\b(?:may|might|could) be (?:black|block) ?listed",
    ),
    Rule(
        RuleId.vendor_ip_reputation,
        Category.ip_reputation,
        "the receiver's reputation service refuses {ip}",
        remedies.IP_REPUTATION_FIX,
        text=r"ipcheck\.proofpoint\.com|proofpoint\.com/dnsbl|dnsbl-lookup|"
        r"blocked for spamming|spamming issues|cloudmark|\bCSI\b|"
        r"\bBRBL\b|barracudacentral|barracuda ?(?:networks )?reputation|\bSBRS\b|senderbase|"
        r"talosintelligence|trend ?micro|\bERS\b|mail-abuse\.com|\bQIL\b|\bRBL\+|"
        r"spamcop\.net/(?:w3m|bl\b)|action=checkblock|\bdns_?rbl\b|\bsender ?score\b|"
        r"(?:ip|sending|sender|mta|network)(?:'s)? (?:address )?reputation|"
        r"(?:poor|bad|low) (?:ip |sender |sending |e-?mail |mail )?reputation|reputation (?:is )?too low|"
        r"ip reputation",
        unless=r"domain",
    ),
    Rule(
        # A listing that names a list of IP addresses (Spamhaus SBL/XBL/PBL, SpamCop,
        # Barracuda, SORBS, UCEPROTECT, CBL, Mailspike, PSBL) or a black list, with no word of
        # a domain, a sender, a link or the EHLO name: a DNS blocklist queried at RCPT or DATA
        # is about the connecting IP unless it says otherwise ("Email blocked by SPAMHAUS",
        # sisimai's Blocked: "blacklisted by", "is in a black list", "rejected -
        # multi-blacklist"). A hedge ("may be blacklisted") is no listing.
        RuleId.dnsbl_ip_list_named,
        Category.ip_reputation,
        "the server rejects {ip}: it names a blocklist ({list})",
        remedies.IP_REPUTATION_FIX,
        # (only words that say the list blocked this client: "Rejected due to Spamhaus listing"
        # names no subject and stays an unspecified listing, below)
        text=r"\b(?:blocked|rejected|refused|denied|black ?listed|block ?listed|banned|listed) "
        # (Barracuda only as its list: "Rejected by Barracuda Spam Firewall" is its filter)
        r"(?:by|at|on|in) (?:the )?(?:spamhaus|spamcop|barracudacentral|sorbs|uceprotect|"
        r"abuseat|mailspike|psbl|cbl|rbls?|dnsbls?)\b|\bblack ?listed by\b|"
        # "listed in work.drbl.imedia.ru": a DNS list's zone, named as one (an IP list's
        # name ends in bl; DBL, URIBL and SURBL are excluded below)
        r"\blisted (?:in|on|at|by) (?:[\w-]{1,63}\.){0,4}[\w-]{0,40}(?:bl|blacklist|blocklist)"
        r"(?:\.[\w-]{1,63}){1,4}\b|\b(?:is|are) (?:in|on) "
        r"(?:a|our|the) (?:black|block) ?list\b|\bmulti-?black ?list\b",
        stages=(Stage.banner, Stage.ehlo, Stage.mail, Stage.rcpt, Stage.data),
        unless=rf"\bdomains?\b|\bdbl\b|\buri|\burl|\bsurbl\b|\brhsbl\b|\b{vocabulary.HELO}\b|"
        r"\bsender\b|\bfrom\b|\bdkim\b|\blinks?\b|\b(?:may|might|could) be\b|\brecipient|"
        r"\b(?:e-?mail )?address(?:es)?\b(?<!ip address)|\bwords?\b|\bphrases?\b|\bcontent|\bspam (?:pattern|contents?)|"
        r"\bfirewall|\bscore\b|\bfilter|\bappliance|\bgateway",
    ),
    Rule(
        # The site's IP, host or network named as a spammer or listed, in any words: its
        # reputation, even where the refusal is worded as a relay or a policy ("Relaying
        # denied - Your IP identified as spammer"). Reputation words beat the subject.
        RuleId.ip_named_as_spammer,
        Category.ip_reputation,
        "the server refuses mail from {ip}: it names the site's IP or host as a spam source",
        remedies.IP_REPUTATION_FIX,
        text=r"\b(?:IP(?:v[46])?(?: address)?|ip-?address|(?:your|sending|sender|client|"
        r"connecting|source|originating|remote) ?(?:host|server|mail ?server|mta|network|"
        r"machine|system))\b(?:[^.;]|\.(?=\w)){0,50}?\b(?:(?:identified|known|listed|flagged|reported|"
        r"detected|classified|recogni[sz]ed|marked) as (?:an? )?(?:spammer|spam ?(?:source|sender|"
        r"bot)|source of spam|spam)|(?:is |are |was )?(?:an? )?(?:known )?(?:spammer|spam ?"
        r"(?:source|bot))s?)\b|"
        # the client as a spam source, the noun alone ("Spam source blocked")
        r"\bspam (?:source|sender|host|ip|server)s? (?:is |was |has been )?(?:blocked|banned|rejected|"
        r"refused|listed|detected)\b|\bknown spam (?:source|sender|host)\b|"
        # Postfix's "Client host rejected: <cause>" with a cause of abuse or spam (SFR's
        # "Client host rejected: Abus detecte GU_EIB_02", in sisimai's Blocked.pm), and a
        # block for abuse (AT&T "blocked for abuse. see http://att.net/blocks")
        rf"\bclient host {vocabulary.REJECTED}:?(?:[^.;]|\.(?=\w)){{0,40}}?\b(?:abus(?:e|ive)?|spam\w*|black ?list\w*|"
        r"block ?list\w*|(?:bad|poor|low) reputation)\b(?!@)|"
        r"\b(?:blocked|banned|rejected|refused) (?:for|due to|because of) (?:\w+ )?abus(?:e|ive)\b(?!@)",
        unless=rf"\bdomain\b|\b{vocabulary.HELO}\b|\bptr\b|reverse|\bsender address\b|"
        r"\bfrom[- ](?:address|header|domain)\b|\b(?:message|content|attachment|url|link)s?\b",
    ),
    Rule(
        # The site's IP, host or network named as what is refused ("access from IP address
        # x blocked", "your remotehost looks like a spammer", "not accepting mail from your
        # IP"), in words no listing rule knows: the subject is the client, so its reputation.
        RuleId.ip_subject_refused,
        Category.ip_reputation,
        "the server refuses mail from {ip}: it names the site's IP or host as refused",
        remedies.IP_REPUTATION_FIX,
        text=vocabulary.CLIENT_REFUSED,
        # Postfix's "Client host rejected" names the subject, not the cause (#16: unrecognised)
        unless=rf"client host {vocabulary.REJECTED}\b|\bdomain\b|\bspf\b|on behalf|relay|\bptr\b|reverse|"
        rf"\b{vocabulary.HELO}\b|validation|verif|\bdns\b|authenticat|"
        # the sender's address is the subject (an IP written as the From is an address)
        r"\bfrom[- ](?:address|header|domain|field)\b|\bsender address\b|\bfrom:|"
        # a sending limit that names the IP is a limit (smtp.rate_limited, below)
        r"limits? (?:for|on) how many|per (?:hour|day)|in the last \d{1,4} (?:seconds|minutes|hours)\b|"
        r"\bto{1,2} many (?:mails|messages|e-?mails|connections|sessions|recipients)\b|"
        # TLS demanded of the client is not its reputation
        r"encrypt|\b(?:tls|starttls|ssl)\b",
    ),
    Rule(
        # Before any command the server knows nothing of the client but its IP address.
        RuleId.ip_blocked_at_greeting,
        Category.ip_reputation,
        "the server refuses {ip} at the greeting: it is blocked",
        remedies.IP_REPUTATION_FIX,
        # (abuse as the reason, not an abuse@ contact)
        text=r"\b(?:blocked|banned|black ?listed|block ?listed|abusive)\b|"
        r"\b(?:due to|for|because of) (?:\w+ )?abuse\b(?!@)",
        stages=(Stage.banner,),
        code_class="5",
        unless=r"domain|helo|sender",
    ),
    Rule(
        # "Listed in Spamhaus" alone does not say whether the IP or a domain is listed: no
        # delisting advice for an IP that may be clean (and no DIRECT_SEND_DIRTY_IP).
        RuleId.dnsbl_listing_unspecified,
        Category.unrecognised_refusal,
        "the server cites a blocklist ({list}) without saying what is listed",
        "The server refuses and names a blocklist ({list}) but not whether the site's IP "
        "{ip} or a domain (the sender {sender}, the EHLO name {ehlo_name}) is listed: look each "
        "of them up at the list, and delist whichever is listed after fixing the cause.",
        text=vocabulary.LISTING_TEXT,
        # a hedge is no listing ("The account or domain may not exist, they may be
        # blacklisted, or missing the proper dns entries": Exim's callout message)
        unless=r"\b(?:may|might|could) be (?:black|block) ?listed",
    ),
)
