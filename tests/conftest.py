"""Hooks and the fixtures every test shares: a real app on a temporary data dir and database,
users with keys, and a view of what is stored.

Nothing else lives here, and nothing imports from here: the harness behind these fixtures is in
``support/`` (``support/__init__.py`` lists what is where), and the fixtures of ``support``
modules that have their own (a real server, moto's S3, the ``affix`` command's environment) are
registered below as plugins. Tests are in two tiers: ``-m "not system"``, the contract through
falcon.testing on SQLite, fast (``unit/``, the pieces; ``functional/``, through the WSGI app);
and ``-m system``, everything with real servers, subprocesses, PostgreSQL, moto, mounts, crashes
or load: ``system/``, and every test on PostgreSQL.
"""
import os
from pathlib import Path

import pytest

# the support modules' asserts report their operands, like a test module's
pytest.register_assert_rewrite("support")

from affix.app import create_app  # noqa: E402
from affix.app.testing import with_plugins  # noqa: E402
from affix.plugins.manager import create_plugin_manager  # noqa: E402
from support.bodies import upload_body  # noqa: E402
from support.clocks import Clock  # noqa: E402
from support.client import post  # noqa: E402
from support.databases import DATABASE_KINDS, Databases  # noqa: E402
from support.defaults import FROZEN_NOW, SMALL_LIMIT  # noqa: E402
from support.faults import OnCue, catalog_on_cue  # noqa: E402
from support.people import make_people  # noqa: E402
from support.postgres import SERVER_URL_VARIABLE, PostgresServer  # noqa: E402
from support.state import Stored  # noqa: E402

pytest_plugins = ["support.cli", "support.clamd", "support.s3", "support.servers"]


def pytest_xdist_auto_num_workers(config):
    """Two test processes per core: most tests spend much of their time waiting for a server,
    a subprocess or a disk, and two per core keep the cores busy meanwhile."""
    return 2 * (os.cpu_count() or 1)


# every test below this folder is of the system tier, without a mark of its own
SYSTEM_TESTS = Path(__file__).parent / "system"


# pytest's temporary folders go on this RAM disk when it has room (a run writes about 1 GB):
# on a disk, every test's SQLite commits and blob writes wait for fsync, and the fast tier took
# 78 s there against 60 s here (2 cores, 2026-12-02). ``--basetemp`` chooses another folder.
RAM_DISK = Path("/dev/shm")
RAM_DISK_ROOM = 4 * 1024 ** 3


def ram_disk_basetemp() -> Path | None:
    """This user's test folder on the RAM disk, or None without a roomy one."""
    try:
        usage = os.statvfs(RAM_DISK)
    except OSError:
        return None
    if usage.f_bavail * usage.f_frsize < RAM_DISK_ROOM or not os.access(RAM_DISK, os.W_OK):
        return None
    # one per user: pytest empties a chosen basetemp when a run starts, and two runs of one
    # user at once need --basetemp of their own
    return RAM_DISK / f"affix-tests-{os.getuid()}"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # before pytest's own tmp_path factory reads the option; xdist's workers get theirs from
    # the controller
    if config.option.basetemp is None:
        config.option.basetemp = ram_disk_basetemp()
    for kind in DATABASE_KINDS:
        config.addinivalue_line(
            "markers", f"{kind}_only(reason): checks what only {kind} has; not run on the other")
    config.addinivalue_line(
        "markers", "one_database(reason): the database plays no part in what it checks (a "
                   "client's compatibility, a parser's property): run on SQLite only")
    config.addinivalue_line(
        "markers", "on_cue(*parts): the app's parts so named are OnCue (support.faults)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """A test marked for one database (or for ``one_database``: SQLite, the default) is not
    collected for the other at all: there is nothing it could check there, so it is neither run
    nor reported as skipped. Every test below
    ``system/``, and every test that runs on PostgreSQL, is of the ``system`` tier. (First, so
    that ``-m`` sees the mark.)"""
    kept, dropped = [], []
    for item in items:
        kind = getattr(item, "callspec", None) and item.callspec.params.get("databases")
        only = [each for each in DATABASE_KINDS if item.get_closest_marker(f"{each}_only")]
        if item.get_closest_marker("one_database"):
            only.append("sqlite")
        (dropped if kind and only and kind not in only else kept).append(item)
        if kind == "postgresql" or item.path.is_relative_to(SYSTEM_TESTS):
            item.add_marker(pytest.mark.system)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_long_tests_first(items):
    """Each xdist worker starts with a contiguous share of the collection, and others steal
    from its end: the tests marked ``long`` go to the fronts of the shares, so that no
    minute-long test starts last and ends the run alone. They are dealt in runs, in collection
    order, so a test's two databases share a worker and run one after the other (the two load
    tests at once would load the machine twice over). (Last, once ``-m`` and ``-k`` have
    deselected; every worker computes the same order.)"""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    long_tests, others = [], []
    for item in items:
        (long_tests if item.get_closest_marker("long") else others).append(item)
    if workers < 2 or not long_tests:
        return
    others = iter(others)
    per_share = -(-len(long_tests) // workers)
    ordered, remaining = [], len(items)
    for share in range(workers):
        # the sizes xdist's worksteal scheduler gives each worker at the start
        size = remaining // (workers - share)
        remaining -= size
        dealt = long_tests[share * per_share:(share + 1) * per_share]
        ordered += dealt + [next(others) for _ in range(max(size - len(dealt), 0))]
    ordered += list(others)
    items[:] = ordered


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer.from_environ()
    yield server
    if server is not None:
        server.close()


@pytest.fixture(params=DATABASE_KINDS)
def databases(request, postgres_server):
    if request.param == "postgresql" and postgres_server is None:
        pytest.skip(f"no PostgreSQL server to test with: set {SERVER_URL_VARIABLE}")
    databases = Databases(request.param, postgres_server)
    yield databases
    databases.drop()


@pytest.fixture
def settings(tmp_path, databases):
    return databases.settings(tmp_path / "data", max_attachment_size=SMALL_LIMIT)


@pytest.fixture
def clock():
    """The app's clock: it stands still at FROZEN_NOW until a test moves it."""
    return Clock(FROZEN_NOW)


# affix's fixtures for plugin authors (affix.app.testing), on conftest's settings, clock,
# plugin manager and app (a test module's, where it has its own): the app's parts, its client
# and a handle on its database are theirs

@pytest.fixture
def affix_settings(settings):
    return settings


@pytest.fixture
def affix_clock(clock):
    return clock


@pytest.fixture
def affix_services(request, affix_services):
    """The app's parts, those a test marks ``on_cue`` (``@pytest.mark.on_cue("blob_store")``)
    wrapped in :class:`~support.faults.OnCue`, in the order named, for the test to put faults
    in their way (``services.blob_store.fail_once(...)``)."""
    marker = request.node.get_closest_marker("on_cue")
    for name in marker.args if marker else ():
        put_on_cue = catalog_on_cue if name == "catalog" else OnCue
        setattr(affix_services, name, put_on_cue(getattr(affix_services, name)))
    return affix_services


@pytest.fixture
def plugin_manager():
    return create_plugin_manager(load_entry_points=False)


@pytest.fixture
def affix_plugin_manager(plugin_manager, affix_plugins):
    """Whatever ``plugin_manager`` is (a test module's own too), with ``affix_plugins``."""
    return with_plugins(plugin_manager, affix_plugins)


@pytest.fixture
def services(affix_services):
    return affix_services


@pytest.fixture
def app(affix_services):
    return create_app(services=affix_services)


@pytest.fixture
def affix_app(app):
    """Whatever ``app`` is, a test module's own too."""
    return app


@pytest.fixture
def client(affix_client):
    return affix_client


@pytest.fixture
def catalog(affix_catalog):
    return affix_catalog


@pytest.fixture
def stored(catalog, settings):
    return Stored(catalog, Path(settings.storage_url))


@pytest.fixture
def people(catalog):
    """Ada the admin, Bob who may upload, and Eve who may only look (``affix.app.testing``'s
    People, the ``affix_users`` of plugin authors)."""
    return make_people(catalog)


@pytest.fixture
def earlier(client, people, stored):
    """One attachment stored before the request under test, and a snapshot of everything."""
    response = post(client, people, upload_body(b'{"fileName": "earlier.txt"}', b"keep me"))
    assert response.status_code == 200
    return stored.snapshot()
