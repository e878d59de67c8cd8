"""pytest plugin: the tiny Linux test guest (see sp_guest.py).

Load it with `pytest_plugins = ["fixtures_guest"]` (conftest.py or a test
module). Fixtures:
  tiny_guest       session-scoped running guest with the agent answering;
                   tests share it, so they must leave it running, thawed and
                   resumed, and not depend on another test's guest state.
  fresh_tiny_guest a guest of the test's own, removed after the test.
Both yield a sp_guest.TinyGuest (.name .uuid .dom .conn .data_disk ...).
The guest boots in 15-20 s under TCG; tests that use it are marked slow.
"""

import pytest

import sp_guest


@pytest.fixture(scope="session")
def guest_conn():
    conn = sp_guest.connect()
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def tiny_guest(guest_conn):
    with sp_guest.make_tiny_guest(guest_conn) as guest:
        yield guest


@pytest.fixture
def fresh_tiny_guest(guest_conn):
    with sp_guest.make_tiny_guest(guest_conn) as guest:
        yield guest
