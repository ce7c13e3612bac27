"""experiments/run_queue.sh: each command once, in order, failures marked and skipped, the list
read again after each command, and nothing run twice when the queue starts again."""

import subprocess
from pathlib import Path

QUEUE = Path(__file__).resolve().parents[2] / "experiments" / "run_queue.sh"


def run_queue(listing: Path, **env) -> None:
    subprocess.run(["bash", str(QUEUE), "0", str(listing)], cwd=listing.parent, check=True,
                   timeout=60, env={"PATH": "/usr/bin:/bin", **env})  # fmt: skip


def test_the_queue_runs_each_command_once_and_marks_what_failed(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# a comment\n"
        "echo a >> out\n"
        "\n"
        "exit 3\n"
        "echo b >> out; echo 'echo c >> out' >> list.txt\n"  # adds a line while it runs
    )
    run_queue(listing, AFTER_EACH="echo after >> hooks")
    assert (tmp_path / "out").read_text() == "a\nb\nc\n"
    assert (tmp_path / "hooks").read_text() == "after\n" * 4  # the added line ran too
    assert (tmp_path / "list.txt.done").read_text() == (
        "ok echo a >> out\nfailed exit 3\n"
        "ok echo b >> out; echo 'echo c >> out' >> list.txt\nok echo c >> out\n"
    )
    assert "exit 3: exit 3" in (tmp_path / "list.txt.logs" / "queue.log").read_text()
    assert (tmp_path / "list.txt.logs" / "6.log").exists()  # each command's log, by line
    run_queue(listing, AFTER_EACH="echo after >> hooks")  # again: nothing left, failed or not
    assert (tmp_path / "out").read_text() == "a\nb\nc\n"
    assert (tmp_path / "hooks").read_text() == "after\n" * 4


def test_a_trainer_stopped_by_sigterm_is_not_marked_done_and_runs_again(tmp_path):
    """A trainer that SIGTERM stops saves and exits 0 with its resume line last: the queue
    ends without marking it, so the next start resumes it."""
    listing = tmp_path / "list.txt"
    stopped = "echo step 10; echo 'stopped; run the same command to resume'; touch stopped"
    listing.write_text(
        f"[ -e stopped ] && echo resumed >> out || {{ {stopped}; }}\necho next >> out\n"
    )
    run_queue(listing)
    assert not (tmp_path / "out").exists() and (tmp_path / "list.txt.done").read_text() == ""
    assert "stopped, not done" in (tmp_path / "list.txt.logs" / "queue.log").read_text()
    run_queue(listing)
    assert (tmp_path / "out").read_text() == "resumed\nnext\n"
    assert (tmp_path / "list.txt.done").read_text().count("ok ") == 2
