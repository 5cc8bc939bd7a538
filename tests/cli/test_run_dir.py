"""A run directory belongs to one run: a lock for the run's life, clear errors for corrupt
checkpoints on resume and for a disk that fills while checkpointing."""

import os
import subprocess
import sys
import time

import pytest
from conftest import REPO, TINY_LISTOPS, run_cli

from nlp_lib.cli import compose, train
from nlp_lib.errors import CheckpointError, RunDirError

SLOW_TRAIN = [*TINY_LISTOPS, "data.train_size=2000", "trainer.max_epochs=50"]


@pytest.mark.integration
def test_a_second_launch_into_a_live_run_directory_fails_at_once_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    first = subprocess.Popen(
        [sys.executable, "-m", "nlp_lib", "train", *SLOW_TRAIN, f"run_dir={run}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not (run / ".lock.owner").is_file():  # the first run holds the directory
            assert first.poll() is None and time.time() < deadline, "the first run did not start"
            time.sleep(0.2)
        second = run_cli("train", *TINY_LISTOPS, f"run_dir={run}")
        assert second.returncode == 2
        assert f"run_dir={run}: in use by process {first.pid}" in second.stderr, second.stderr[-2000:]
        # a resume while the run is alive is refused the same way
        (run / "checkpoints").mkdir(exist_ok=True)
        last = run / "checkpoints" / "last.ckpt"
        created = not last.exists()
        if created:
            last.write_bytes(b"placeholder")
        resumed = run_cli("train", f"resume={run}")
        assert resumed.returncode == 2 and "in use by process" in resumed.stderr, resumed.stderr[-2000:]
        if created:
            last.unlink()
    finally:
        first.kill()
        first.wait()
    # the kernel released the killed run's lock: the directory is free again (for resume=)
    from filelock import FileLock

    with FileLock(run / ".lock", timeout=0):
        pass


def test_two_launches_in_one_process_cannot_share_a_directory(tmp_path):
    from nlp_lib.cli.rundir import hold_run_dir

    with hold_run_dir(tmp_path / "r"):
        with pytest.raises(RunDirError, match=f"in use by process {os.getpid()}"):
            with hold_run_dir(tmp_path / "r"):
                pass
    with hold_run_dir(tmp_path / "r"):  # released after the run
        pass


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ckpt") / "run"
    train(compose("listops_tree_lstm", [*TINY_LISTOPS, f"run_dir={run}"]))
    return run


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "a pickle that runs code"])
def test_resume_from_a_corrupt_last_checkpoint_names_the_file(finished_run, tmp_path, damage):
    import pickle
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "metrics.json").unlink()  # as if killed before the end
    last = run / "checkpoints" / "last.ckpt"
    marker = tmp_path / "marker"
    if damage == "empty":
        last.write_bytes(b"")
    elif damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "garbage":
        last.write_bytes(os.urandom(4096))
    else:

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        last.write_bytes(pickle.dumps({"state_dict": Evil()}))
    res = run_cli("train", f"resume={run}")
    assert res.returncode == 2, res.stderr[-2000:]
    assert f"{last}:" in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert not marker.exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB file system (tmpfs; needs root, as CI has), unmounted after the test."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.decode(errors='replace').strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.integration
def test_a_full_disk_while_checkpointing_is_a_clear_error_and_leaves_no_temporary_file(small_disk):
    import torch

    from nlp_lib.tasks.checkpoint_io import AtomicCheckpointIO

    path = small_disk / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()
    with pytest.raises(
        CheckpointError, match=r"last.ckpt: cannot write the checkpoint .*previous checkpoint is intact"
    ):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(200_000)}}, path)  # 800 KB: the disk is full
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file keeps it full
    assert path.read_bytes() == before
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    io.save_checkpoint({"state_dict": {"w": torch.zeros(10)}}, path)  # space is free again
