"""Checkpoints under adversity: two processes on one file, damaged or foreign files, a
read-only directory, and files someone else could have written (loading a checkpoint runs the
pickles it holds). Each is refused at the start with one `nbpar.CheckpointError` naming the
file and what to do -- or, for a finished checkpoint in a read-only place, simply read.
"""

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import pytest

import nbpar
from waiting import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))


def logged_square(log, x):
    with open(log, "a") as f:
        f.write(f"{x}\n")
    time.sleep(0.02)
    return x * x


def square(x):
    return x * x


def square_below(x, top=30):
    if x >= top:
        raise ValueError(f"{x} is too big")
    return x * x


def executed(log):
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [int(line) for line in f]


def finished_checkpoint(path, n=20):
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        assert pool.map(square, range(n), checkpoint=path) == [x * x for x in range(n)]
    return path


OTHER = textwrap.dedent("""
    import os, sys
    sys.path[:0] = [sys.argv[1], os.path.dirname(sys.argv[1])]
    import nbpar
    from test_checkpoint_safety import logged_square

    if __name__ == "__main__":
        with nbpar.WorkerPool(2, start_method="fork", shared_objects=sys.argv[2]) as pool:
            out = pool.map(logged_square, range(150), checkpoint=sys.argv[3], chunk_size=1)
        print("RESULT", sum(out), len(out), flush=True)
""")


def test_a_second_process_on_a_checkpoint_in_use_is_refused_naming_the_first(tmp_path):
    script, log, ck = tmp_path / "other.py", str(tmp_path / "log"), str(tmp_path / "run.nbpar")
    script.write_text(OTHER)
    proc = subprocess.Popen([sys.executable, str(script), HERE, log, ck],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(executed(log)) >= 5, timeout=30, what="the other map running")
        with nbpar.WorkerPool(2, start_method="fork", shared_objects=log) as pool:
            with pytest.raises(nbpar.CheckpointError) as err:
                pool.map(logged_square, range(150), checkpoint=ck)
        message = str(err.value)
        assert repr(ck) in message and f"process {proc.pid} " in message, message
        assert "in use" in message
        out, errors = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # the first map was not disturbed, and its checkpoint now serves this process
    assert f"RESULT {sum(x * x for x in range(150))} 150" in out, errors
    runs = len(executed(log))
    with nbpar.WorkerPool(2, start_method="fork", shared_objects=log) as pool:
        assert pool.map(logged_square, range(150), checkpoint=ck) == [x * x for x in range(150)]
    assert len(executed(log)) == runs  # nothing ran again
    assert not os.path.exists(ck + "-lock")


def test_two_maps_of_one_process_on_one_checkpoint():
    """The same holds between two maps of one process (two threads, two pools)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        ck = os.path.join(tmp, "run.nbpar")
        from nbpar.checkpoint import Checkpoint
        first = Checkpoint(ck, square, list(range(5)))
        try:
            with nbpar.WorkerPool(1, start_method="threading") as pool:
                with pytest.raises(nbpar.CheckpointError,
                                   match=f"process {os.getpid()} on .*: this very process"):
                    pool.map(square, range(5), checkpoint=ck)
        finally:
            first.close()
        with nbpar.WorkerPool(1, start_method="threading") as pool:
            assert pool.map(square, range(5), checkpoint=ck) == [0, 1, 4, 9, 16]


def _garbage(path):
    with open(path, "wb") as f:
        f.write(b"this is not a database, just some text a user saved here\n" * 50)


def _truncated(path):
    finished_checkpoint(path, n=400)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 3)


def _foreign(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    db.execute("INSERT INTO invoices VALUES (1, 9.5)")
    db.commit()
    db.close()


def _bad_pickle(path):
    finished_checkpoint(path)
    db = sqlite3.connect(path)
    db.execute("UPDATE results SET value = ? WHERE idx = 3", (b"\x80\x05garbage",))
    db.commit()
    db.close()


@pytest.mark.parametrize("damage", [_garbage, _truncated, _foreign, _bad_pickle])
def test_a_damaged_or_foreign_file_is_one_clear_error_naming_it(damage, tmp_path):
    ck = str(tmp_path / "run.nbpar")
    damage(ck)
    os.chmod(ck, 0o600)
    before = open(ck, "rb").read()
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        with pytest.raises(nbpar.CheckpointError) as err:
            pool.map(square, range(20), checkpoint=ck)
    message = str(err.value)
    assert repr(ck) in message and ("move it away" in message or "move the file away"
                                    in message), message
    assert open(ck, "rb").read() == before  # never written into
    assert not os.path.exists(ck + "-lock")


def _read_only_runner():
    """How to run a reader that cannot write a 0o555 directory: as root, without the
    capability that lets root write anywhere."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: no way to make a directory read-only")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


READER = textwrap.dedent("""
    import os, sys
    sys.path[:0] = [sys.argv[1], os.path.dirname(sys.argv[1])]
    import nbpar
    from test_checkpoint_safety import square, square_below

    with nbpar.WorkerPool(2, start_method="threading") as pool:
        print("RESULT", pool.map(square, range(int(sys.argv[3])), checkpoint=sys.argv[2]))
        try:
            pool.map(square_below, range(40), checkpoint=sys.argv[2] + ".partial")
        except nbpar.CheckpointError as exc:
            print("REFUSED", exc)
""")


def test_a_finished_checkpoint_reads_back_from_a_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ck = str(ro / "run.nbpar")
    finished_checkpoint(ck, n=30)
    with nbpar.WorkerPool(2, start_method="threading") as pool:  # one with items missing
        with pytest.raises(ValueError, match="too big"):
            pool.map(square_below, range(40), checkpoint=ck + ".partial")
    assert sorted(os.listdir(ro)) == ["run.nbpar", "run.nbpar.partial"]  # one file each
    script = tmp_path / "reader.py"
    script.write_text(READER)
    os.chmod(ro, 0o555)
    try:
        out = subprocess.run([*_read_only_runner(), sys.executable, str(script), HERE, ck, "30"],
                             capture_output=True, text=True, timeout=60)
    finally:
        os.chmod(ro, 0o755)
    assert f"RESULT {[x * x for x in range(30)]}" in out.stdout, out.stdout + out.stderr
    refused = [line for line in out.stdout.splitlines() if line.startswith("REFUSED")]
    assert refused, out.stdout + out.stderr
    assert "run.nbpar.partial" in refused[0] and "item(s) are missing" in refused[0]
    assert "writable directory" in refused[0]


def test_a_checkpoint_others_could_write_is_refused(tmp_path):
    ck = str(tmp_path / "run.nbpar")
    finished_checkpoint(ck)
    assert stat.S_IMODE(os.stat(ck).st_mode) == 0o600  # created private
    for mode in (0o620, 0o602):
        os.chmod(ck, mode)
        with nbpar.WorkerPool(1, start_method="threading") as pool:
            with pytest.raises(nbpar.CheckpointError, match="writable by other users") as err:
                pool.map(square, range(20), checkpoint=ck)
        assert repr(ck) in str(err.value) and "pickles" in str(err.value)
        assert f"chmod go-w {ck}" in str(err.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_checkpoint_owned_by_another_user_is_refused(tmp_path):
    ck = str(tmp_path / "run.nbpar")
    finished_checkpoint(ck)
    os.chown(ck, 65534, 65534)
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        with pytest.raises(nbpar.CheckpointError, match="owned by uid 65534, not by you") as err:
            pool.map(square, range(20), checkpoint=ck)
    assert repr(ck) in str(err.value) and "pickles" in str(err.value)


def test_a_map_refused_after_its_checkpoint_opened_leaves_it_free(tmp_path):
    """memory= is checked after the checkpoint is opened: the refused map must not keep the
    file locked (nor an fd open) for the rest of the session."""
    import gc
    ck = str(tmp_path / "run.nbpar")
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        with pytest.raises(TypeError, match="memory"):
            pool.map(square, range(5), checkpoint=ck, memory=5)
        gc.collect()
        assert _open_files_under(tmp_path) == []
        assert pool.map(square, range(5), checkpoint=ck) == [0, 1, 4, 9, 16]
    assert _open_files_under(tmp_path) == []


def _open_files_under(folder):
    """The files under `folder` this process holds open (counting all fds would also count
    those other tests' threads open and close meanwhile)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed since listed
        if target.startswith(str(folder)):
            found.append(target)
    return found


def test_a_lock_file_planted_as_a_symlink_is_refused_not_followed(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not truncate me")
    ck = str(tmp_path / "run.nbpar")
    os.symlink(victim, ck + "-lock")
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        with pytest.raises(nbpar.CheckpointError, match="cannot be locked.*remove that file"):
            pool.map(square, range(5), checkpoint=ck)
    assert victim.read_text() == "do not truncate me"
