"""The recipe runner's stage commands: an interrupted runner stops its command the way a Ctrl-C at a
terminal would, whether the signal reached the runner from a terminal or from `kill` (real processes)."""

import signal
import subprocess
import sys
import textwrap

from il_robot.recipes import command_log
from il_robot.recipes.command_log import stop_child

# A stand-in for a stage's command: says it is up, saves on the first SIGINT and exits 130 (as
# il-robot does); `stubborn` ignores SIGINT.
CHILD = textwrap.dedent("""
    import signal, sys, time
    saved = sys.argv[1]
    if sys.argv[2] == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        print("up", flush=True)   # inside the try: a SIGINT right after "up" is a save, not a traceback
        time.sleep(600)
    except KeyboardInterrupt:
        open(saved, "w").write("saved")
        sys.exit(130)
""")


def start(tmp_path, mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "saved"), mode],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == "up"   # its handler is in place
    return proc


def test_an_interrupted_runner_has_its_command_save_and_stop(tmp_path):
    proc = start(tmp_path, "saves")
    stop_child(proc)
    assert proc.returncode == 130 and (tmp_path / "saved").read_text() == "saved"


def test_a_command_that_will_not_stop_is_killed_after_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(command_log, "CHILD_SAVE_TIMEOUT", 1.0)
    proc = start(tmp_path, "stubborn")
    stop_child(proc)
    assert proc.returncode == -signal.SIGKILL and not (tmp_path / "saved").exists()


def test_a_signal_to_the_runner_alone_stops_the_stage_too(tmp_path):
    """`kill -INT RUNNER` (no terminal, no process group): the stage's command stops with it."""
    stand_in = tmp_path / "stage.py"
    stand_in.write_text(CHILD)
    runner = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from il_robot.recipes.command_log import RunLog
        log = RunLog(Path({str(tmp_path / 'log.txt')!r}))
        try:
            log.run_command([sys.executable, {str(stand_in)!r}, {str(tmp_path / 'saved')!r}, "saves"], "a stage")
        except KeyboardInterrupt:
            sys.exit(130)
    """)
    proc = subprocess.Popen([sys.executable, "-c", runner], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip().startswith("$ ")
    assert proc.stdout.readline().strip() == "up"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert (tmp_path / "saved").read_text() == "saved"
