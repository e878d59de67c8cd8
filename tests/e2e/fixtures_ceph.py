"""pytest plugin: the single-node Ceph cluster of sp_ceph.py.

Fixture:
  ceph  session-scoped running cluster (sp_ceph.Cluster), started the first
        time a test asks for it and stopped, its directory removed, at the
        end of the session. Tests share it: each uses images and objects of
        its own names (or a RADOS namespace of its own) and removes them.
"""

import pytest

import sp_ceph


@pytest.fixture(scope="session")
def ceph():
    missing = sp_ceph.missing_packages()
    if missing:
        pytest.fail(f"Ceph programs missing ({' '.join(missing)}): run scripts/ensure-host")
    with sp_ceph.Cluster() as cluster:
        yield cluster
