"""swaks as a second opinion: the same conversation fleet has, by a tool none of us wrote.

swaks cannot speak SOCKS (its `--proxy` is the HAProxy PROXY protocol), so it talks through
`ncat --proxy ... --proxy-type socks5` as a pipe; `--tls` works over a pipe.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

# swaks marks what it sends with "->" ("~>" inside TLS) and what it reads with "<-" ("<~"),
# followed by "*" when the reply is an error.
_SENT = re.compile(r"^ *([-~])> (\S+)")
_READ = re.compile(r"^<([-~])\*? +(\d{3})([- ])(.*)$")

_STAGE_OF_COMMAND = {"STARTTLS": "starttls", "MAIL": "mail", "RCPT": "rcpt", "QUIT": "quit"}


@dataclass(frozen=True)
class SwaksReply:
    stage: str  # fleet's name for the stage: banner, ehlo, starttls, ehlo_tls, mail, rcpt, quit
    code: int
    text: str  # the reply's last line, without the code


def swaks_conversation(
    *,
    proxy_port: int,
    smtp_port: int,
    mail_from: str,
    rcpt_to: str,
    ehlo: str,
    timeout_s: float = 30,
) -> tuple[list[SwaksReply], str]:
    """Have swaks talk to 127.0.0.1:`smtp_port` through the SOCKS5 proxy, up to RCPT TO;
    returns the final line of each reply, by stage, and swaks's whole output."""
    pipe = f"ncat --proxy 127.0.0.1:{proxy_port} --proxy-type socks5 127.0.0.1 {smtp_port}"
    done = subprocess.run(
        [
            "swaks", "--quit-after", "RCPT", "--tls", "--pipe", pipe,
            "--from", mail_from, "--to", rcpt_to, "--ehlo", ehlo,
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    return parse(output), output


def parse(output: str) -> list[SwaksReply]:
    """The final line of each reply in a swaks transcript, named by stage."""
    replies: list[SwaksReply] = []
    stage = "banner"
    for line in output.splitlines():
        sent = _SENT.match(line)
        if sent:
            in_tls, verb = sent[1] == "~", sent[2].upper()
            if verb in ("EHLO", "HELO"):
                stage = "ehlo_tls" if in_tls else "ehlo"
            else:
                stage = _STAGE_OF_COMMAND.get(verb, verb.lower())
            continue
        read = _READ.match(line)
        if read and read[3] == " ":
            replies.append(SwaksReply(stage, int(read[2]), read[4]))
    return replies
