"""Native writes to descriptor 2 are silenced while Python's stderr still reaches the terminal; the log levels."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import logging, os, sys
    from dicetalk_bench.quiet import python_stderr_only
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.write(2, b"native-before\\n")
    with python_stderr_only():
        os.write(2, b"native-inside\\n")
        print("python-inside", file=sys.stderr)
        logging.getLogger("x").info("log-inside")
        subprocess_rc = __import__("subprocess").call([sys.executable, "-c", "import os; os.write(2, b'child-inside')"])
    os.write(2, b"native-after\\n")
    logging.getLogger("x").info("log-after")
""")


def test_native_stderr_is_silenced_and_python_stderr_kept() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "native-before" in err and "native-after" in err and "log-after" in err
    assert "python-inside" in err and "log-inside" in err
    assert "native-inside" not in err and "child-inside" not in err


def test_quiet_libraries_sets_levels_and_environment(monkeypatch) -> None:
    from dicetalk_bench import quiet

    for key in quiet.QUIET_ENVIRON:
        monkeypatch.delenv(key, raising=False)
    quiet.quiet_libraries(verbose=False)
    assert logging.getLogger("distributed").level == logging.ERROR
    assert all(__import__("os").environ[k] == v for k, v in quiet.QUIET_ENVIRON.items())
    quiet.quiet_libraries(verbose=True)
    assert logging.getLogger("distributed").level == logging.DEBUG
    logging.getLogger("distributed").setLevel(logging.NOTSET)
    for name in quiet.CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_dask_workers_are_left_alone_with_debug_logging() -> None:
    from dicetalk_bench import quiet

    class Client:
        def __init__(self) -> None:
            self.ran = []

        def run(self, fn):
            self.ran.append(fn)

    root = logging.getLogger()
    old = root.level
    try:
        root.setLevel(logging.DEBUG)
        c = Client()
        assert quiet.quiet_dask_workers(c) is False and c.ran == []
        root.setLevel(logging.WARNING)
        assert quiet.quiet_dask_workers(c) is True and c.ran == [quiet._silence_worker]
    finally:
        root.setLevel(old)


def test_python_stderr_elsewhere_stays_where_it_is(capsys) -> None:
    """Under a capture (sys.stderr not on descriptor 2) Python's stderr is left alone and still captured."""
    import os

    from dicetalk_bench.quiet import python_stderr_only

    with python_stderr_only():
        print("captured-line", file=sys.stderr)
        os.write(2, b"")  # the native descriptor is the silenced one
    assert "captured-line" in capsys.readouterr().err
