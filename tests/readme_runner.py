"""Run README.md the way a new user follows it: every fenced block, top to bottom, in one scratch "clone".

How each block is used (the language after the opening fence, and an optional marker on the line before it):

- ``bash`` / ``sh`` / ``shell``: run by ``bash`` with ``set -euo pipefail``; the folder it ends in and its
  exported variables (``PATH`` after ``. .venv/bin/activate``, ...) carry over to the next block, as in one
  terminal. Every command in such a block must succeed; a background job (``shipyard serve ... &``) must be
  stopped by the block itself (``kill %1``); whatever is left is killed when the block ends.
- ``console``: a transcript. Each ``$ `` line is run; the lines after it, up to the next ``$ ``, are the output
  it must print (stdout and stderr together, trailing spaces ignored). Its exit status is not checked: this is
  where a README shows an error.
- ``python``: run by the ``python`` on the carried ``PATH`` (the venv's once activated), fed on stdin as if
  pasted, in the carried folder.
- ``yaml`` (or any other language) with ``<!-- readme-test: file PATH -->``: written to PATH (relative to the
  carried folder); with ``<!-- readme-test: append PATH -->``: appended to it.
- ``<!-- readme-test: instead `COMMAND` (why) -->``: COMMAND runs in the block's place.
- ``<!-- readme-test: skip (why) -->``: not run. The test keeps the list of skipped blocks to an expected few.

Any other block is an error, so nothing leaves the test unnoticed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SHELLS = {"bash", "sh", "shell"}
MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
INSTEAD = re.compile(r"^instead\s+`(?P<cmd>[^`]+)`\s*\((?P<why>.+)\)$")
SKIP = re.compile(r"^skip\s*\((?P<why>.+)\)$")
FILE = re.compile(r"^(?P<how>file|append)\s+(?P<path>\S+)$")


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence in README.md
    lang: str
    text: str
    marker: str | None  # the marker's body, e.g. "skip (why)"

    @property
    def first(self) -> str:
        return next((ln for ln in self.text.splitlines() if ln.strip()), "")

    def kind(self) -> str:
        """How the block is used: shell, console, python, file, append, instead or skip; ValueError if none fits."""
        if self.marker is not None:
            if SKIP.match(self.marker):
                return "skip"
            if INSTEAD.match(self.marker):
                return "instead"
            found = FILE.match(self.marker)
            if found:
                return found["how"]
            raise ValueError(f"README.md line {self.line}: unknown readme-test marker {self.marker!r}")
        if self.lang in SHELLS:
            return "shell"
        if self.lang in ("console", "python"):
            return self.lang
        raise ValueError(f"README.md line {self.line}: a ```{self.lang} block that the README test cannot run: "
                         "tag it bash/console/python, or put `<!-- readme-test: file PATH -->` or "
                         "`<!-- readme-test: skip (why) -->` on the line before it")


def parse(markdown: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the readme-test marker on the last non-blank line before it."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = len(opening["indent"])
        prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(prev)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        if j == len(lines):
            raise ValueError(f"README.md line {i + 1}: a code block that is never closed")
        blocks.append(Block(i + 1, opening["lang"], "\n".join(body) + "\n", marker["body"] if marker else None))
        i = j + 1
    return blocks


class BlockFailed(AssertionError):
    pass


class Session:
    """One user's terminal: a folder and the exported environment, carried from block to block."""

    def __init__(self, root: Path, cwd: Path, env: dict[str, str], timeout: float = 120) -> None:
        self.root, self.cwd, self.env, self.timeout = root, cwd, env, timeout
        self.state = Path(tempfile.mkdtemp(prefix="state-", dir=root))

    def run(self, block: Block) -> str:
        kind = block.kind()
        if kind == "skip":
            return ""
        if kind == "shell":
            return self._shell(block, block.text)
        if kind == "instead":
            found = INSTEAD.match(block.marker or "")
            assert found
            return self._shell(block, found["cmd"] + "\n")
        if kind in ("file", "append"):
            found = FILE.match(block.marker or "")
            assert found
            with (self.cwd / found["path"]).open("a" if kind == "append" else "w") as f:
                f.write(block.text)
            return ""
        if kind == "python":
            return self._python(block)
        return self._console(block)

    def _exec(self, argv: list[str], block: Block, *, stdin: Path | None = None) -> tuple[int, str]:
        log = self.state / "output"
        with log.open("wb") as out, (stdin.open("rb") if stdin else open(os.devnull, "rb")) as inp:
            proc = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdin=inp, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                rc = -1
            finally:
                # whatever the block left running (a server it did not stop, a timed-out command)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        text = log.read_text(errors="replace")
        if rc == -1:
            self._fail(block, f"timed out after {self.timeout:.0f} s", text)
        return rc, text

    def _fail(self, block: Block, why: str, output: str) -> None:
        raise BlockFailed(f"README.md line {block.line}, the ```{block.lang} block starting `{block.first}`: {why}\n"
                          f"--- block ---\n{block.text}--- output ---\n{output[-6000:]}")

    def _shell(self, block: Block, text: str) -> str:
        offset = block.line  # script line 3 is the block's first line, README line block.line + 1
        preamble = ["set -euo pipefail",
                    f"trap 'echo \"README.md line $((LINENO + {offset} - 2)): exit $? from: $BASH_COMMAND\" >&2' ERR"]
        script = self.state / f"block-{block.line}.sh"
        cwd_file, env_file = self.state / "cwd", self.state / "env"
        script.write_text("\n".join(preamble) + "\n" + text +
                          f'\npwd > "{cwd_file}"\nenv -0 > "{env_file}"\n')
        rc, output = self._exec(["bash", str(script)], block)
        if rc != 0:
            self._fail(block, f"exit status {rc}", output)
        self.cwd = Path(cwd_file.read_text().strip())
        pairs = (item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
        self.env = {k: v for k, v in pairs if not k.startswith("BASH_FUNC_") and k not in ("_", "SHLVL", "OLDPWD")}
        return output

    def _python(self, block: Block) -> str:
        script = self.state / f"block-{block.line}.py"
        script.write_text(block.text)
        python = shutil.which("python", path=self.env.get("PATH")) or "python3"
        rc, output = self._exec([python, "-"], block, stdin=script)
        if rc != 0:
            self._fail(block, f"exit status {rc}", output)
        return output

    def _console(self, block: Block) -> str:
        steps: list[tuple[str, list[str]]] = []
        for line in block.text.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line.rstrip())
            elif line.strip():
                self._fail(block, f"output before the first `$ ` command: {line!r}", "")
        everything = []
        for command, expected in steps:
            script = self.state / f"block-{block.line}.sh"
            script.write_text(command + "\n")
            _, output = self._exec(["bash", str(script)], block)
            got = [ln.rstrip() for ln in output.splitlines()]
            while expected and not expected[-1]:
                expected.pop()
            if got != expected:
                self._fail(block, f"`{command}` printed something else than the README shows",
                           "expected:\n" + "\n".join(expected) + "\ngot:\n" + output)
            everything.append(output)
        return "".join(everything)
