"""Conditional downloads (RFC 9110, section 13): the validators of an attachment's bytes, and
what ``If-None-Match``, ``If-Modified-Since`` and ``If-Range`` make of a request.

An attachment's bytes never change once stored, so its md5 is a strong entity tag and its
creation time its last modification.
"""
import datetime

import falcon


def entity_tag(md5: str) -> falcon.ETag:
    return falcon.ETag(md5)


def last_modified(created_at: datetime.datetime) -> datetime.datetime:
    """The creation time (naive UTC in the database), whole seconds, as HTTP dates are."""
    return created_at.replace(microsecond=0, tzinfo=datetime.UTC)


def http_date(value: str | None) -> datetime.datetime | None:
    """The moment an HTTP date names (aware, UTC); None for no value and for anything that is
    not one date: RFC 9110 (13.1.3) has a recipient ignore an invalid date, a list of dates
    included, where Falcon's own properties answer 400."""
    if value is None:
        return None
    try:
        return falcon.http_date_to_dt(value.strip()).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


def not_modified(req, etag: falcon.ETag, modified: datetime.datetime | None = None) -> bool:
    """Whether the client's copy is current: a 304. ``If-None-Match`` is compared weakly and
    wins over ``If-Modified-Since``, which is read only without it (RFC 9110, 13.1.3), even
    when it names no tag affix can read; without ``modified``, only the tag counts."""
    if req.get_header("If-None-Match") is not None:
        return any(tag == "*" or tag == etag for tag in req.if_none_match or ())
    since = http_date(req.get_header("If-Modified-Since"))
    return since is not None and modified is not None and modified <= since


def range_applies(req, etag: falcon.ETag, modified: datetime.datetime) -> bool:
    """Whether a ``Range`` is to be answered: always without ``If-Range``; with it, only when
    it names the current bytes (an entity tag compared strongly, or the exact date)."""
    condition = req.if_range
    if condition is None:
        return True
    condition = condition.strip()
    if condition.startswith("W/"):
        # a weak tag never validates a range
        return False
    if condition.startswith('"'):
        return falcon.ETag.loads(condition) == etag
    return http_date(condition) == modified
