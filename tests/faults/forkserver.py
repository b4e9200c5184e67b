"""Run ``fashionrec`` commands as real child processes without paying for Python's imports each time.

The fault suite kills ``fashionrec index`` with SIGKILL dozens of times. A
fresh interpreter spends seconds importing torch before it does anything, so
:class:`ForkServer` starts one interpreter that imports the CLI (and registers
the tiny test backbone) once, then forks a child per command. Each child is a
separate process with its own memory and file descriptors; when it is killed,
nothing of it runs again — exactly what ``kill -9`` does to a command started
from a shell. The server never runs a torch operation itself, so no thread
pool exists yet when it forks.

Protocol (JSON lines on the server's stdin/stdout):
``{"op": "start", "argv": [...], "env": {...}, "kill_after": s | null}`` → ``{"pid": n}``;
``{"op": "wait", "pid": n}`` → ``{"returncode": rc, "output": "stdout+stderr"}``,
``rc`` negative for a signal (``-9`` for SIGKILL), as :mod:`subprocess` reports it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from tiny_backbone import SOURCE as TINY

REPO = Path(__file__).resolve().parents[2]

_SERVER = TINY + textwrap.dedent('''
    import json, os, signal, sys, tempfile, threading, time
    import fashionrec.cli

    logs = tempfile.mkdtemp(prefix="fashionrec-forkserver-")
    children = {}

    def start(request):
        path = os.path.join(logs, f"{len(children)}.log")
        pid = os.fork()
        if pid == 0:  # the child: becomes `fashionrec ARGV...`
            code = 1
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.environ.update(request.get("env") or {})
                sys.argv = ["fashionrec", *request["argv"]]
                fashionrec.cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = path
        if request.get("kill_after") is not None:
            timer = threading.Timer(request["kill_after"], _kill, (pid,))
            timer.daemon = True
            timer.start()
        return {"pid": pid}

    def _kill(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(request):
        pid = request["pid"]
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        with open(children.pop(pid), encoding="utf-8", errors="replace") as handle:
            return {"returncode": code, "output": handle.read()}

    for line in sys.stdin:
        request = json.loads(line)
        reply = start(request) if request["op"] == "start" else wait(request)
        sys.stdout.write(json.dumps(reply) + "\\n")
        sys.stdout.flush()
''')


@dataclass
class Completed:
    """What a finished child did: ``returncode`` (negative: killed by that signal) and its output."""

    returncode: int
    output: str

    @property
    def killed(self) -> bool:
        return self.returncode == -9


class ForkServer:
    """One warm interpreter that runs ``fashionrec`` commands as forked child processes (see the module)."""

    def __init__(self, env: dict[str, str] | None = None):
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=REPO, env=env,
        )

    def _call(self, request: dict) -> dict:
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server ended (exit status {self._process.poll()})")
        return json.loads(line)

    def start(self, *argv, env: dict[str, str] | None = None, kill_after: float | None = None) -> int:
        """Start ``fashionrec ARGV...`` in a child; returns its pid. ``kill_after``: SIGKILL it after that many seconds."""
        return self._call({"op": "start", "argv": [str(a) for a in argv], "env": env or {}, "kill_after": kill_after})["pid"]

    def wait(self, pid: int) -> Completed:
        """Wait for the child ``pid`` to end."""
        return Completed(**self._call({"op": "wait", "pid": pid}))

    def run(self, *argv, env: dict[str, str] | None = None, kill_after: float | None = None) -> Completed:
        """Run ``fashionrec ARGV...`` in a child and wait for it."""
        return self.wait(self.start(*argv, env=env, kill_after=kill_after))

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(30)
