"""Fixtures of the end-to-end tests: the real libvirtd, the built binaries,
and throwaway VMs (sp_vm.py). Binaries come from $STILLPOINT_BUILD (default
./build), so the same tests run against the normal and the sanitizer build."""
import json
import os
import pwd
import subprocess

import libvirt
import pytest

import sp_vm

# The tiny Linux guest (tests/guest, sp_guest.py) and the Ceph cluster
# (sp_ceph.py) as session fixtures.
pytest_plugins = ["fixtures_guest", "fixtures_ceph"]

# Lifecycle events need libvirt's event loop registered before any
# connection is opened (EventWatcher in sp_vm).
sp_vm.start_event_loop()

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("STILLPOINT_BUILD", os.path.join(ROOT, "build")))
TEST_USER = os.environ.get("STILLPOINT_TEST_USER", "sptest")


def pytest_collection_modifyitems(config, items):
    """A test that restarts libvirtd cuts every other test's connection (and
    the session fixtures'): it runs only when nothing else is collected
    (tests/run-all runs tests/e2e/test_restarts.py in a process of its own)."""
    restarts = [i for i in items if i.get_closest_marker("restarts_libvirtd")]
    if restarts and len(restarts) < len(items):
        skip = pytest.mark.skip(reason="restarts libvirtd: runs alone "
                                "(pytest tests/e2e/test_restarts.py, as tests/run-all does)")
        for i in restarts:
            i.add_marker(skip)


class Bins:
    stillpoint = os.path.join(BUILD, "agent", "stillpoint")
    copy = os.path.join(BUILD, "copier", "stillpoint-copy")
    hook = os.path.join(BUILD, "hook", "stillpoint-hook")


class Result:
    def __init__(self, cp):
        self.rc, self.out, self.err = cp.returncode, cp.stdout, cp.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"<rc={self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}>"


def run(argv, env=None, user=None, timeout=600, input=None):
    """Runs a binary (never through a shell); user= runs it as that user."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    if user:
        # runuser keeps only what we pass on its command line.
        keep = [f"{k}={v}" for k, v in (env or {}).items()]
        argv = ["runuser", "-u", user, "--", "env", *keep, *argv]
    cp = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=timeout,
                        input=input)
    return Result(cp)


@pytest.fixture(scope="session")
def bins():
    for p in (Bins.stillpoint, Bins.copy, Bins.hook):
        assert os.access(p, os.X_OK), f"{p} is not built (cmake -B build && cmake --build build)"
    return Bins


@pytest.fixture(scope="session")
def conn():
    sp_vm.ensure_libvirt()
    c = libvirt.open(sp_vm.URI)
    yield c
    c.close()


@pytest.fixture(scope="session")
def test_user():
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        pytest.fail(f"test user {TEST_USER} missing: run tests/setup-host first")
    return TEST_USER


@pytest.fixture(scope="session")
def confdir(tmp_path_factory):
    """An empty configuration directory, so the host's /etc/stillpoint never
    changes what a test sees."""
    d = tmp_path_factory.mktemp("conf")
    (d / "vm.d").mkdir()
    os.environ["STILLPOINT_CONFDIR"] = str(d)
    return d


@pytest.fixture(scope="session")
def shared_vm(conn, confdir):
    """One running VM for every test that does not need a fresh one. Tests
    that use it must leave it running and must not depend on its disk
    content from another test."""
    vm = sp_vm.TestVM(conn, tag="shared")
    try:
        vm.start()
        yield vm
    finally:
        vm.remove()


@pytest.fixture
def make_vm(conn, confdir):
    """Factory of fresh VMs, all removed after the test."""
    vms = []

    def make(**kw):
        start = kw.pop("start", True)
        paused = kw.pop("paused", False)
        vm = sp_vm.TestVM(conn, **kw)
        vms.append(vm)
        if start:
            vm.start(paused=paused)
        return vm

    yield make
    for vm in vms:
        vm.remove()
