"""Running the `kneeguard` command line in this process, as the console script would."""

from __future__ import annotations

import io
import os
import subprocess
from contextlib import redirect_stderr, redirect_stdout

from kneeguard.cli import main


def kneeguard(db_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI's entry point in this process, as the console script would."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({k: v for k, v in saved.items() if not k.startswith("KNEEGUARD_")})
    os.environ.update(KNEEGUARD_DATABASE_URL=db_url, **env)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def assert_user_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    """The command failed with `code` and one `kneeguard: error:` line containing `text`."""
    assert result.returncode == code, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kneeguard: error: ")
    assert text in lines[0], lines[0]
    assert "Traceback" not in result.stderr
