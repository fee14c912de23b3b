"""Root pytest configuration: a private, throw-away Scipion environment for tests.

pyworkflow reads its configuration from environment variables when it is first imported, so they
are set here, before any test module imports it (DESIGN.md §3). Nothing here imports pyworkflow,
so plain backend/CLI tests pay nothing. Set DEEPRES_KEEP_SCIPION=1 to keep the folder (projects,
run logs) after the session; its path is printed at the end."""
import os
import shutil
import sys
import tempfile

_ROOT = tempfile.mkdtemp(prefix="deepres-scipion-")


def _scipion_env(root: str) -> dict:
    hosts = os.path.join(root, "config", "hosts.conf")
    os.makedirs(os.path.dirname(hosts), exist_ok=True)
    with open(hosts, "w", encoding="utf-8") as fh:
        fh.write("[localhost]\nPARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s\n")
    return {
        "SCIPION_DOMAIN": "pwem",
        "SCIPION_HOME": root,
        "SCIPION_USER_DATA": os.path.join(root, "ScipionUserData"),
        "SCIPION_TESTS": os.path.join(root, "tests"),
        "SCIPION_TESTS_OUTPUT": os.path.join(root, "tests-output"),
        "SCIPION_HOSTS": hosts,
        "SCIPION_CONFIG": os.path.join(root, "config", "scipion.conf"),
        "SCIPION_PYTHON": sys.executable,
        "SCIPION_TEST_NOSYNC": "1",
        "SCIPION_NOTIFY": "False",
        "SCIPION_USE_QUEUE": "False",
        "MPLBACKEND": "Agg",
    }


os.environ.update(_scipion_env(_ROOT))


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("DEEPRES_KEEP_SCIPION"):
        print(f"\nScipion test environment kept in {_ROOT}")
    else:
        shutil.rmtree(_ROOT, ignore_errors=True)
