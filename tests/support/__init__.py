"""Harness code the tests share: servers, databases, clients, documents. No tests here.

One concept per module; test modules import what they need from here (``from support.state
import Stored``), never from each other or from ``conftest``. Modules with fixtures of their own
(``servers``, ``s3``, ``cli``) are registered as plugins in ``tests/conftest.py``, so that any test
may ask for those fixtures by name. What plugin authors get too (``People``, the multipart
builder, ``basic_auth``) lives in affix itself, in ``affix.app.testing``.

- ``defaults``: what conftest's affix is made with (its frozen clock, its small size limit)
- ``people``: conftest's users, Ada the admin, Bob who may upload, Eve who may only look
- ``databases``, ``postgres``: the database of every test (SQLite, or a new PostgreSQL one)
- ``state``: what affix stored, read back: rows, blobs, containers, work packages, roles
- ``content``: files to upload (a real PNG, seeded random bytes) and their md5
- ``bodies``: request bodies (upload bodies with odd metadata, a body that records reads)
- ``client``: requests through falcon.testing as one of conftest's users
- ``work_packages``: work package documents, creating and changing them through falcon.testing
- ``errors``: the HAL errors affix answers with, their messages, and asserting one
- ``statuses``: virus scanning's attachment statuses, set in the database
- ``upload_permissions``: uploads that plugins' permissions decide, and what they left
- ``races``: running calls at the same moment in threads
- ``faults``: a store or a database failing once, on cue
- ``clocks``: a clock the test sets, for affix's ``clock=`` collaborators
- ``statements``: the SQL statements a request runs, counted
- ``migrations``: what ``affix migrate`` prints
- ``direct_uploads``: preparing a direct upload, sending the file to the store with its form
- ``direct_parts``: a direct upload in parts: preparing it, its part URLs and held parts,
  sending parts to the bucket
- ``tus``: resumable uploads through falcon.testing (partial and final ones too), a PATCH cut
  short on a real server; the upload rows and partial files read back
- ``schemathesis_hooks``: how schemathesis sends a tus upload's bytes (its hooks file)
- ``cli``: running ``affix <command>`` in this process; the ``environ`` fixture
- ``disks``: a real, small filesystem, for a full disk
- ``net``, ``processes``, ``waiting``: loopback ports, subprocesses, polling
- ``relays``: TCP relays on loopback: one that counts bytes, a gate that holds a client mid-upload
- ``servers``: a real ``affix serve`` (gunicorn) on loopback; the ``server`` fixtures
- ``http``: uploading to and downloading from a real server
- ``webhook_receiver``: a real HTTP server on loopback that webhooks are delivered to
- ``webhooks``: subscribing, the outbox read back, the documented signature check, what arrived
- ``scrape``: affix's metrics, scraped and parsed (a real server's, or a falcon.testing app's)
- ``logs``: a real server's log read back: JSON lines, access lines
- ``nginx``: Debian's nginx in front of a server, configured as deploy/nginx.conf says
- ``pages``, ``browser``: pages served from an origin of their own (npm's scripts from
  ``tests/js`` under ``/vendor/``); headless Chromium (Selenium)
- ``clamd``: a throwaway clamd (Debian's) that knows the EICAR test file; the ``clamd`` fixtures
- ``slow_clients``: clients that would hold a server's threads, and normal requests beside them
- ``s3``: moto's S3 server in a process of its own; the ``s3_bucket`` fixtures
- ``signing_bucket``: a bucket in front of moto that checks pre-signed URLs' signatures and
  expiry as S3 does, on a clock the test sets
- ``plugin_packages``: the example plugin package affix-meetings
- ``openproject_clients``: real OpenProject clients from PyPI (openproject-cli's command, and
  pyopenproject in its own environment through ``pyopenproject_driver``)
"""
