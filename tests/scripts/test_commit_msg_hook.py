"""scripts/hooks/commit-msg enforces CONTRIBUTING.md's commit rules."""

import subprocess

import pytest
from conftest import REPO

HOOK = REPO / "scripts" / "hooks" / "commit-msg"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("Tree runner: the fused sweep as a cell hook\n\nBecause the runner detected it by class.\n", None),
        ("x" * 73 + "\n\nwhy\n", "subject is 73 characters"),
        ("Subject\nno blank line\n", "second line must be blank"),
        ("Subject only\n", "no body"),
        ("Subject\n\n# a comment git strips\n", "no body"),
    ],
)
def test_the_hook_takes_good_messages_and_names_what_is_wrong(tmp_path, message, error):
    f = tmp_path / "MSG"
    f.write_text(message)
    res = subprocess.run([str(HOOK), str(f)], capture_output=True, text=True)
    assert (res.returncode == 0) == (error is None), res.stderr
    if error:
        assert error in res.stderr
