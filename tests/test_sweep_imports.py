"""What a sweep of healthy sites never needs, it never imports: the learned reader (and the
importlib.resources machinery it once read its model with) only comes with the first reply
no rule reads."""

from __future__ import annotations

import subprocess
import sys


def test_the_learned_reader_is_imported_on_the_first_reply_no_rule_reads() -> None:
    code = (
        "import sys\n"
        "import fleet.cli.sweeping, fleet.runner, fleet.pipeline, fleet.probes.smtp\n"
        "from fleet.classify import classify_reply, make_reply, Context\n"
        "from fleet.results import Mode, Stage\n"
        "c = Context(mode=Mode.direct_send, host='h', port=25, authenticated=False)\n"
        "seen = lambda: ['fleet.judgement.learned' in sys.modules,"
        " 'importlib.resources' in sys.modules]\n"
        "print(*seen())\n"
        "classify_reply(Stage.rcpt, make_reply(550, '5.1.1 User unknown'), c)\n"
        "print(*seen())\n"
        "found = classify_reply(Stage.rcpt, make_reply(550, 'Zorglub'), c)\n"
        "print(*seen(), found.category.value)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    lines = done.stdout.splitlines()
    assert lines[:2] == ["False False", "False False"]
    assert lines[2].startswith("True False ")  # read, and its model read beside it


def test_a_loop_that_drives_c_ares_itself_never_imports_aiodns() -> None:
    code = (
        "import asyncio, sys\n"
        "import fleet.cli.sweeping, fleet.runner, fleet.pipeline, fleet.probes.smtp\n"
        "from fleet.dns import Dns\n"
        "async def main():\n"
        "    dns = Dns(['127.0.0.1:9'], timeout_s=0.1, tries=1)\n"
        "    print(type(dns._resolver).__name__)\n"
        "    await dns.close()\n"
        "asyncio.run(main())\n"
        "print('aiodns' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["LoopChannel", "False"]
