"""Rules for TLS and the login (AUTH)."""

from __future__ import annotations

from fleet.judgement import remedies, vocabulary
from fleet.judgement.rule import Rule
from fleet.judgement.rule_ids import RuleId
from fleet.results import Category, Stage

# Credentials the server no longer takes (revoked, expired, changed): the login's, at any stage
_CREDENTIALS_VOID = (
    r"\b(?:login |sign-?in |smtp |your |the )?(?:credentials|app password|password|token)s? "
    r"(?:are |is |have been |has been )?(?:no longer valid|revoked|invalidated)\b"
)

# Microsoft's 5.7.139 "did not meet the criteria" sentence, with its code or quoted without it
_POLICY_BLOCKS_LOGIN = (
    "a Conditional Access or legacy-authentication policy blocks this login",
    "A policy blocks password (legacy) authentication for {mailbox}: exclude the account "
    "from the legacy-auth block or enable SMTP AUTH for it, or move to "
    + remedies.AUTH_ALTERNATIVES
    + ".",
)

SESSION: tuple[Rule, ...] = (
    # -- TLS ------------------------------------------------------------------------------
    Rule(
        RuleId.m365_tls_legacy,
        Category.tls_failure,
        "Microsoft 365 refuses TLS 1.0 and 1.1",
        "The server needs TLS 1.2 or newer: update the copier's firmware; until then relay "
        "through a local relay that speaks old TLS (smtp-legacy.office365.com only while the "
        "tenant allows legacy TLS).",
        enhanced=("4.7.66",),
    ),
    Rule(
        RuleId.tls_must_starttls_first,
        Category.tls_required,
        "the server requires STARTTLS before this command",
        "Set the copier's security to STARTTLS (port {port}); the server refuses to go on "
        "without encryption.",
        text=r"STARTTLS (?:command )?first|Must issue a STARTTLS|(?:TLS|STARTTLS|encryption|"
        r"secure connection|SSL)(?: conversation| session| connection| transport)? (?:is )?"
        r"(?:required|needed|mandatory)|"
        r"requires? (?:TLS|STARTTLS|encryption|a secure connection|an encrypted)|"
        r"must (?:use|issue|start) (?:STARTTLS|TLS)|must be sen[dt] with (?:an )?encryption|not (?:over|using) (?:TLS|an encrypted)|"
        r"please use (?:TLS|STARTTLS|SSL|encryption|a secure connection)\b|"
        r"unencrypted (?:connection|session)s? (?:are )?not (?:allowed|permitted|accepted)|"
        # a security level the receiver saw for the sender's domain before and misses now
        # (chasquid's "5.7.3 Security level check failed")
        r"\bsecurity level check failed\b|"
        # Dovecot's "Plaintext authentication disallowed on non-secure (SSL/TLS) connections"
        r"\b(?:disallowed|not (?:allowed|permitted|accepted)) (?:on|over) (?:non-?secure|"
        r"insecure|unencrypted|plain ?text) (?:\(SSL/TLS\) )?(?:connections?|sessions?|channels?)|"
        # the same demand in other words: the thing (TLS, SSL, encryption, a secure
        # connection) and the need ("requiered" as QQ spells it), or sending without it
        # refused ("Email sending without SSL/TLS encryption is not allowed", Yandex)
        r"\b(?:TLS|SSL|STARTTLS|encryption|secure (?:connection|channel|session|transport))\b"
        r"(?:[^.;]|\.(?=\w)){0,12}?\b(?:is |are )?(?:requie?red|requiered|needed|mandatory|necessary|"
        r"obligatory)\b|\bwithout (?:an? )?(?:SSL/TLS|TLS|SSL|STARTTLS|encryption|secure "
        r"connection|encrypted connection)\b(?:[^.;]|\.(?=\w)){0,30}?\b(?:is |are )?(?:not (?:allowed|"
        r"permitted|accepted|possible|supported)|forbidden|prohibited|refused|disabled)\b|"
        r"\bonly (?:over|via|with|through) (?:an? )?(?:TLS|SSL|STARTTLS|encrypted|secure)\b|"
        # the login itself only over TLS ("Must authenticate over TLS")
        r"\b(?:authenticate|log ?in|auth\w*) (?:only )?(?:over|via|with|using|through) (?:an? )?"
        r"(?:TLS|SSL|STARTTLS|encrypted|secure)\b",
        unless=r"TLS 1\.[0-2]|TLS ?v?1\.[0-2]|version",
    ),
    Rule(
        # TLS was there but not good enough, at any stage: an old version, weak ciphers, a
        # failed handshake ("This route requires TLS version 1.2 or greater", Mimecast).
        RuleId.tls_version_or_handshake,
        Category.tls_failure,
        "the server refuses the TLS the copier can offer (version, ciphers or handshake)",
        "{endpoint} needs newer TLS (1.2 or later) or stronger ciphers than were offered, or "
        "the TLS handshake failed: update the copier's firmware; until then relay through a "
        "local relay that speaks modern TLS.",
        text=r"\b(?:TLS|SSL)(?:/TLS)? (?:handshake|negotiation) (?:failed|failure|error)|"
        r"\bTLS ?(?:version )?v?1\.[2-3] or (?:greater|higher|newer|later|above)|"
        # ... or as no longer supported by the server ("Amazon SES no longer supports TLS 1.0")
        r"\b(?:no longer|does not|do not) supports? TLS ?v?1\.[01]\b|"
        # old versions named as refused ("TLS 1.0 and 1.1 are not supported", Microsoft's
        # 4.7.66 in words)
        r"\bTLS ?v?1\.[01](?: (?:and|or|/) (?:TLS ?v?)?1\.[01])? (?:is |are )?(?:not supported|"
        r"no longer supported|deprecated|disabled|not allowed)\b|"
        r"\brequires? TLS (?:version )?1\.[2-3]|\bTLS version\b(?:[^.;]|\.(?=\w)){0,30}(?:not supported|too old|"
        r"required|insecure)|(?:high|strong)-?(?:strength)? ciphers?\b(?:[^.;]|\.(?=\w)){0,20}required|"
        r"requires? (?:high|strong)-?(?:strength)? ciphers|"
        # qpsmtpd's tls plugin "Cannot establish SSL session"
        r"\b(?:cannot|can ?not|could not|unable to|failed to) (?:establish|negotiate|start|set up|"
        r"initiali[sz]e) (?:an? |the )?(?:SSL|TLS)(?:/TLS)?(?: session| connection| handshake| layer)?\b",
    ),
    Rule(
        RuleId.tls_message_not_over_tls,
        Category.tls_required,
        "the receiver requires mail to arrive over TLS",
        "The receiver refuses mail that did not come over TLS: set the copier's security to "
        "STARTTLS (port {port}) or implicit TLS.",
        text=r"(?:was not|not) sent over (?:a )?TLS|requires? (?:all )?\w* ?(?:senders )?"
        r"to use TLS|TLS/SSL for SMTP",
    ),
    Rule(
        RuleId.tls_encryption_required_code,
        Category.tls_required,
        "the server requires encryption before this command",
        "Set the copier's security to STARTTLS (port {port}) or implicit TLS: the server "
        "refuses to go on without encryption.",
        # RFC 4954 / RFC 5248: X.7.11 encryption required, X.7.10 encryption needed
        enhanced=("5.7.10-5.7.11",),
        # Gmail sends 5.7.10 on "SMTP protocol violation ... pipeline after STARTTLS" too
        unless=r"TLS 1\.[0-2]|TLS ?v?1\.[0-2]|version|protocol violation|pipelin",
    ),
    Rule(
        RuleId.smtp_protocol_violation,
        Category.protocol_error,
        "the server saw a protocol violation",
        "{endpoint} reports an SMTP protocol violation (a command out of order or pipelined "
        "where it may not be): an SMTP-inspecting firewall between the site and {host} can "
        "cause this; turn off its SMTP inspection, else tell the server's administrator.",
        text=r"protocol (?:violation|error)|pipelin\w* after STARTTLS|out of sequence|bad "
        r"sequence of commands|commands? (?:was )?sent (?:too early|before)|need (?:MAIL|RCPT|"
        r"(?:E?HELO|EHLO))(?: FROM| TO)? command|command not (?:recogni[sz]ed|implemented)|"
        r"unrecogni[sz]ed command|command unrecogni[sz]ed|"
        rf"\b{vocabulary.HELO} (?:command )?not (?:supported|implemented)|syntax error|(?:improper|wrong|invalid|incorrect) (?:command )?"
        r"sequence|sequence of commands|parameter not (?:implemented|recogni[sz]ed)|"
        # an argument the server cannot parse (an AUTH response that is not Base64)
        r"(?:invalid|bad|malformed) command (?:argument|parameter)s?\b|"
        r"not (?:a )?valid base ?64|(?:invalid|bad|malformed) base ?64|base ?64[- ]decod\w*|"
        r"base ?64 (?:decod\w* )?(?:error|failed|invalid)|"
        r"cannot decode|"
        r"improper use of (?:smtp )?command pipelining|synchroni[sz]ation error",
        unless=r"(?:sender|recipient|mail ?from) address syntax",
    ),
    Rule(
        # Exim "STARTTLS command used when not advertised": a command out of place, not a
        # TLS failure (the server never offered TLS).
        RuleId.tls_starttls_not_advertised,
        Category.protocol_error,
        "the server did not offer STARTTLS, so it refused the command",
        "{endpoint} does not offer STARTTLS (fleet sent it anyway): set the copier's security "
        "to none or implicit TLS for this host, or use a host that offers STARTTLS.",
        text=r"not advertised|not offered|already (?:in |using |running |started |active)|"
        r"TLS already",
        stages=(Stage.starttls,),
        code_class="5",
    ),
    Rule(
        RuleId.tls_not_available,
        Category.tls_failure,
        "the server offered STARTTLS but could not start TLS",
        "The server's TLS is broken (it advertised STARTTLS and then refused it): tell the "
        "mail server's administrator; the copier cannot send securely until it is fixed.",
        stages=(Stage.starttls,),
        code_class="4",
    ),
    # -- authentication -----------------------------------------------------------------
    Rule(
        RuleId.m365_smtp_auth_disabled_tenant,
        Category.auth_disabled,
        "SMTP AUTH is turned off for this Microsoft 365 tenant or mailbox",
        "SMTP AUTH is disabled (5.7.139): enable it for {mailbox} only "
        "(Set-CASMailbox -SmtpClientAuthenticationDisabled $false), knowing Basic AUTH is "
        "being retired; better: " + remedies.AUTH_ALTERNATIVES + ".",
        enhanced=("5.7.139",),
        text=r"SmtpClientAuthentication is disabled|smtp_auth_disabled",
    ),
    Rule(
        # The same words quoted inside another reply ("5.7.57 Client not authenticated ...
        # Error: 535 5.7.139 ... SmtpClientAuthentication is disabled"): the inner cause is
        # the one to fix, whatever the outer code.
        RuleId.m365_smtp_auth_disabled_quoted,
        Category.auth_disabled,
        "SMTP AUTH is turned off for this Microsoft 365 tenant or mailbox",
        "SMTP AUTH is disabled (5.7.139): enable it for {mailbox} only "
        "(Set-CASMailbox -SmtpClientAuthenticationDisabled $false), knowing Basic AUTH is "
        "being retired; better: " + remedies.AUTH_ALTERNATIVES + ".",
        text=r"SmtpClientAuthentication is disabled",
    ),
    Rule(
        RuleId.m365_security_defaults,
        Category.auth_disabled,
        "Entra ID security defaults block password logins for this mailbox",
        "Security defaults block legacy authentication for {mailbox}: replace them with a "
        "Conditional Access policy that excludes this account, or move off passwords: "
        + remedies.AUTH_ALTERNATIVES
        + ".",
        enhanced=("5.7.139",),
        text=r"security defaults",
    ),
    Rule(
        RuleId.m365_conditional_access,
        Category.auth_disabled,
        *_POLICY_BLOCKS_LOGIN,
        enhanced=("5.7.139",),
        text=r"did not meet the criteria",
    ),
    Rule(
        # Microsoft's 5.7.139 sentence quoted without its code (a client's log, a wrapper)
        RuleId.m365_conditional_access_text,
        Category.auth_disabled,
        *_POLICY_BLOCKS_LOGIN,
        text=r"did not meet the criteria to be authenticated",
        stages=(Stage.auth,),
    ),
    Rule(
        RuleId.m365_federated_sts,
        Category.auth_failed,
        "the tenant's federated sign-in service could not be reached",
        "The domain signs in through a federation service (ADFS) that Microsoft could not "
        "reach over TLS 1.2: fix the federation endpoint, or use a cloud-only mailbox.",
        enhanced=("5.7.139",),
        text=r"federated STS",
    ),
    Rule(
        RuleId.m365_bad_credentials,
        Category.auth_failed,
        "Microsoft 365 rejected the password for {mailbox}",
        "The password for {mailbox} is wrong or expired: update it on the copier and in "
        "fleet's secret store (one attempt per sweep, so the mailbox is not locked out).",
        enhanced=("5.7.139",),
        text=r"credentials were incorrect",
    ),
    Rule(
        RuleId.m365_smtp_auth_refused,
        Category.auth_disabled,
        "Microsoft 365 refuses password logins for {mailbox} (5.7.139)",
        "Microsoft refuses this login for a policy reason (5.7.139, see the reply text): check "
        "that SMTP AUTH is enabled for {mailbox} (Get-CASMailbox | fl "
        "SmtpClientAuthenticationDisabled) and that security defaults or Conditional Access "
        "do not block it; better: " + remedies.AUTH_ALTERNATIVES + ".",
        enhanced=("5.7.139",),
        # an account locked after failed logins is the login's (auth.account_refused), not a
        # policy that blocks password logins
        unless=r"credentials were incorrect|federated STS|\baccount\b(?:[^.;]|\.(?=\w)){0,40}\blocked\b|"
        rf"{vocabulary.TOO_MANY} failed",
    ),
    Rule(
        RuleId.m365_basic_auth_retired,
        Category.auth_disabled,
        "Microsoft 365 no longer accepts Basic (password) authentication for SMTP",
        "Basic AUTH for SMTP is retired for this tenant (5.7.30): move the copier to "
        + remedies.AUTH_ALTERNATIVES
        + ".",
        enhanced=("5.7.30",),
        stages=(Stage.auth,),
    ),
    Rule(
        RuleId.auth_basic_disabled,
        Category.auth_disabled,
        "the server no longer accepts Basic (password) authentication",
        "Basic (password) AUTH is turned off for {mailbox}: move the copier to "
        + remedies.AUTH_ALTERNATIVES
        + ".",
        text=r"basic auth(?:entication)? (?:is )?(?:disabled|not (?:supported|allowed|enabled)|"
        r"blocked|turned off|deprecated)|legacy auth(?:entication)? (?:is )?(?:disabled|blocked)",
    ),
    Rule(
        RuleId.m365_auth_unsuccessful,
        Category.auth_failed,
        "Microsoft 365 refused the login for {mailbox}",
        "Login refused (535 5.7.3): check the password, that SMTP AUTH is enabled for "
        "{mailbox} (Get-CASMailbox | fl SmtpClientAuthenticationDisabled), and that MFA or "
        "Conditional Access do not block it.",
        enhanced=("5.7.3",),
        code_class="5",
        stages=(Stage.auth,),  # elsewhere X.7.3 is RFC 3463's security conversion, not a login
    ),
    Rule(
        RuleId.google_app_password_required,
        Category.auth_disabled,
        "Google requires an App Password or OAuth for this account",
        "Google refuses plain account passwords: create an App Password (needs 2-Step "
        "Verification) for {mailbox}, or use OAuth (XOAUTH2).",
        enhanced=("5.7.9",),
        stages=(Stage.auth,),
    ),
    Rule(
        # the same demand from any provider (iCloud, Yahoo, Zoho), without Google's 5.7.9
        RuleId.auth_app_password_required,
        Category.auth_disabled,
        "the provider requires an app-specific password (or OAuth) for this account",
        "The provider refuses the account's own password for SMTP: create an app-specific "
        "password for {mailbox} (it usually needs two-step verification) and give it to the "
        "copier, or move to OAuth.",
        text=r"\b(?:application|app)[- ]specific password|\b(?:application|app) passwords? (?:is |are )?"
        r"(?:required|needed|mandatory)|\b(?:use|create|generate) an? (?:application|app)"
        r"(?:[- ]specific)? password|"
        # QQ Mail and NetEase: "请使用授权码登录" ("please log in with the authorisation code",
        # their app password); "authorization code" in their English pages
        r"授权码|\b(?:use|with) (?:an? |the |your )?authori[sz]ation code\b|"
        # NetEase's answer to the account password at AUTH, until an authorisation code is
        # set ("550 User has no permission": its help and users' notes say so)
        # ("Your account has no permission to use SMTP" elsewhere is a refused login)
        r"\buser has no permission\b(?! to\b)",
        stages=(Stage.auth,),
    ),
    Rule(
        RuleId.google_web_login_required,
        Category.auth_failed,
        "Google wants this account to sign in through a browser first",
        "Google blocked the password login for {mailbox} until someone signs in through a web "
        "browser (5.7.14: a new device or a suspicious sign-in): sign in once in a browser from "
        "the site, then use an App Password or OAuth (XOAUTH2) on the copier.",
        enhanced=("5.7.14",),
        stages=(Stage.auth,),
    ),
    Rule(
        RuleId.google_bad_credentials,
        Category.auth_failed,
        "Google rejected the username or password for {mailbox}",
        "Google rejected the login: use an App Password for {mailbox} (ordinary passwords "
        "are refused) or OAuth (XOAUTH2).",
        text=r"Username and Password not accepted|BadCredentials",
    ),
    Rule(
        RuleId.m365_client_not_authenticated,
        Category.auth_required,
        "the server only accepts mail after a login",
        {
            "unauthenticated": (
                "{endpoint} requires a login (5.7.57): configure a mailbox and password or "
                "OAuth on the copier, or point it at the tenant's MX for Direct Send instead."
            ),
            "authenticated": (
                "The server did not see a successful login: make sure STARTTLS succeeds "
                "first (AUTH is only offered over TLS), then check the credentials."
            ),
        },
        enhanced=("5.7.57",),
    ),
    Rule(
        RuleId.smtp_auth_required,
        Category.auth_required,
        "the server only accepts mail after a login",
        "{endpoint} requires authentication: configure a mailbox and password (or OAuth) on "
        "the copier, or use a host that accepts unauthenticated mail for your domain.",
        text=r"authentication (?:is )?required|auth(?:entication)? required|not authenticated|"
        r"must (?:first )?authenticate|must (?:first )?(?:log ?in|sign in)|WantAuthError|"
        r"unauthenticated (?:senders?|relay|mail|"
        r"sending|users?|clients?)|"
        # a session or connection without a login named (Apache James "Sender ... is not
        # allowed for unauthenticated connection", "unauthenticated e-mail from <ip> is
        # restricted"; MailCleaner "unauthenticated session on submission port")
        # ("Too many unauthenticated connections" is a limit)
        r"(?<!many )\bunauthenticated (?:connections?|sessions?)\b|"
        r"\bunauthenticated e-?mail from (?:[^.;]|\.(?=\w)){0,60}\bis restricted\b|smtp auth(?:entication)? (?:is )?required|"
        r"(?:turn on|enable|use) smtp auth|without (?:prior )?authentication|"
        r"(?:turn(?:ed)? on|enabled?) (?:smtp )?authentication|"
        r"requires? (?:smtp )?auth(?:entication)?|must be authenticated|"
        # POP-before-SMTP (Nifty "sorry, you must get POP/APOP authorization.")
        r"\b(?:POP3?|APOP|IMAP)(?:/(?:POP3?|APOP|IMAP))? (?:before SMTP|authori[sz]ation)\b|"
        r"(?:log ?in|authenticate) (?:first|before)|not logged in|please (?:log ?in|"
        r"authenticate)|issue an? AUTH command|"
        # "send AUTH command first" (Postfix/Yandex 5.5.4 at MAIL): the login is wanted, not a
        # syntax error
        r"\b(?:send|issue|use|give) (?:an? |the )?AUTH\b(?: command)?(?: first| before)|"
        r"\bAUTH (?:command )?(?:first|required|needed)\b|"
        # a recipient that takes mail only from authenticated senders (Microsoft's 5.7.133-136)
        r"\bonly (?:accepts?|receives?) (?:e-?mail |mail |messages? )?from authenticated\b|"
        r"\bauthentication (?:turned on|enabled) in your\b|(?:log ?in|authentication) (?:is )?(?:needed|"
        r"necessary)|"
        r"authentification (?:requise|obligatoire)|\bauthori[sz]ation required\b|"
        r"\bnot allowed to send (?:e-?mail |mail )?without authori[sz]ation\b|"
        r"anonymous (?:relay|mail|senders?) "
        r"(?:is |are )?not (?:allowed|permitted|accepted)",
        unless=r"invalid credentials",
    ),
    Rule(
        # Exim "AUTH command used when not advertised": a command out of place (the server
        # offered no AUTH on this connection), like its STARTTLS one, not AUTH switched off.
        RuleId.smtp_auth_not_advertised,
        Category.protocol_error,
        "the server did not offer AUTH on this connection, so it refused the command",
        "{endpoint} did not offer a login on this connection (fleet sent AUTH anyway): if it "
        "offers AUTH only after STARTTLS, set the copier's security to STARTTLS; otherwise "
        "use the provider's submission host ({submission}) for authenticated mail, or remove "
        "the login from the copier.",
        text=r"\bAUTH command used when not advertised\b",
        stages=(Stage.auth,),
    ),
    Rule(
        RuleId.smtp_auth_not_enabled,
        Category.auth_disabled,
        "the server does not offer SMTP AUTH here",
        "{endpoint} does not offer a login: use the provider's submission host ({submission}) "
        "for authenticated mail, or remove the login from the copier.",
        text=r"authentication not enabled|not supported|unrecognized authentication|"
        r"not advertised|AUTH (?:command )?not (?:available|allowed|permitted|offered|enabled)|"
        # the login type or mode the server does not implement (indimail's "auth type
        # unimplemented", a Chinese provider's "auth mode unsupported.")
        r"\bauth(?:entication)? (?:type|mode|method)s? (?:is |are )?(?:unimplemented|"
        r"unsupported|unknown|unrecogni[sz]ed|invalid|prohibited|forbidden|disabled|"
        r"not (?:implemented|supported|available|allowed|permitted))\b|"
        r"\b(?:unimplemented|unsupported|unknown|unrecogni[sz]ed) auth(?:entication)? (?:type|mode|"
        r"method)s?\b|"
        r"mechanism",
        stages=(Stage.auth,),
    ),
    Rule(
        # The account itself is refused at AUTH (Stalwart "Your account is not authorized to
        # use this service", MailEnable "User Account has been disabled").
        RuleId.auth_account_refused,
        Category.auth_failed,
        "the server refused the login for {mailbox}: the account is disabled or not allowed",
        "The server refuses the account {mailbox} itself (disabled, locked, suspended or not "
        "allowed to send): ask its administrator to enable it for SMTP, or use another mailbox.",
        text=r"account\b(?:[^.;]|\.(?=\w)){0,40}\b(?:not (?:authori[sz]ed|allowed|permitted|enabled)|"
        r"disabled|locked|suspended|blocked|inactive|expired|deactivated)|"
        r"(?:disabled|locked|suspended|blocked|inactive) (?:user|account)|"
        r"(?:user|mailbox) (?:is |has been )?(?:disabled|locked|suspended)",
        stages=(Stage.auth,),
    ),
    Rule(
        # A login refused, named after the login at a later command ("AUTH FAILED -
        # user@example.com" at MAIL FROM, BMH's rules): the login's, not the sender's. Only
        # the words of a login ("AUTH", "login", "password"): "failed authentication" alone
        # is SPF/DKIM's (sender.authentication_checks).
        RuleId.auth_failed_named,
        Category.auth_failed,
        "the server says the login for {mailbox} failed",
        "The server refused the login of {mailbox}: check the username and password on the "
        "copier (and that it logs in at all before sending).",
        text=r"\bAUTH failed\b|\blog ?in (?:has )?failed\b|\binvalid (?:login|password)\b|"
        r"\b(?:wrong|incorrect|bad) (?:login|password|user ?name or password)\b|"
        # hMailServer "Login credentials no longer valid. Please re-authenticate."
        + _CREDENTIALS_VOID,
        stages=(Stage.mail, Stage.rcpt, Stage.data),
    ),
    Rule(
        # a password to change first (RFC 4954 X.7.12 "A password transition is needed", in
        # words without the code): the login's
        RuleId.auth_password_change,
        Category.auth_failed,
        "the server refused the login for {mailbox}: its password must be changed first",
        "The server wants the password of {mailbox} changed (expired, or a transition needed): "
        "change it, then update the copier.",
        text=r"\bpassword (?:transition|change|reset) (?:is )?(?:needed|required)|\bpassword (?:has )?"
        r"expired|\bmust change (?:your |the )?password",
        stages=(Stage.auth,),
    ),
    Rule(
        RuleId.smtp_auth_failed,
        Category.auth_failed,
        "the server rejected the login for {mailbox}",
        "The server rejected the credentials of {mailbox}: check the username and password.",
        text=r"authentication (failed|unsuccessful|credentials invalid)|incorrect authentication|"
        r"invalid credentials(?! for relay)|authenti(?:cation|fication) (?:failure|invalid\w*|"
        r"refused|rejected|error)|(?:bad|wrong|incorrect|invalid) (?:user ?name|login|password|"
        r"credentials|user(?: name)? or password)|" + _CREDENTIALS_VOID,
        stages=(Stage.auth,),
        # "Temporary authentication failure": the server's, try again; "Authentication failed:
        # Maximum credits exceeded": the cause after the subject is a limit
        unless=rf"temporar|exceeded|reached|\blimit\b|quota|credits|{vocabulary.TOO_MANY}",
    ),
)
