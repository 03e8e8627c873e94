"""A worker's traceback names the file, line and source line of a function defined in a
script's __main__ (sent by value), under every start method and every cloudpickle release
nbpar is tested with: the locked one and those in requirements/cloudpickle-compat.txt, which
scripts/setup.sh installs into .venv/cloudpickle/VERSION."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
COMPAT = Path(sys.prefix) / "cloudpickle"
RELEASES = ["locked"] + sorted(p.name for p in COMPAT.glob("*")) if COMPAT.is_dir() else ["locked"]

SCRIPT = '''\
import sys
import cloudpickle
import nbpar


def check(value):
    if value < 0:
        raise ValueError(f"negative: {value}")
    return value


def parse(text):
    number = int(text)
    return check(number)


if __name__ == "__main__":
    with nbpar.WorkerPool(2, start_method=sys.argv[1]) as pool:
        try:
            pool.map(parse, ["1", "-2"], chunk_size=1)
        except ValueError as error:
            print("cloudpickle", cloudpickle.__version__)
            print(error.__cause__.tb)
            print("report:", pool.report().errors[0].traceback)
'''


def test_the_compat_releases_are_installed():
    wanted = [line.split("==")[1] for line in
              (ROOT / "requirements" / "cloudpickle-compat.txt").read_text().splitlines()
              if line.startswith("cloudpickle==")]
    assert wanted and set(wanted) <= set(RELEASES), (wanted, RELEASES)


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("start_method", ["forkserver", "fork", "spawn", "threading"])
def test_script_frames_name_file_line_and_source(tmp_path, start_method, release):
    script = tmp_path / "readings.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    if release != "locked":
        env["PYTHONPATH"] = os.pathsep.join([str(COMPAT / release), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, str(script), start_method], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=50)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    if release != "locked":
        assert f"cloudpickle {release}" in text
    for where in (text.split("report:")[0], text.split("report:")[1]):
        assert f'File "{script}", line 14, in parse\n    return check(number)\n' in where
        assert (f'File "{script}", line 8, in check\n'
                f'    raise ValueError(f"negative: {{value}}")\n') in where
        assert "ValueError: negative: -2" in where
        assert "<dynamic-code>" not in where
        assert "nbpar/worker.py" not in where  # nbpar's frames above the user's are left out
