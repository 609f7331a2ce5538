"""Which users may upload is decided by plugins: the built-in one, and one registered in-process.
(A real third-party distribution that pip installs and affix finds through its entry point:
system/test_plugin_entry_points.py.)"""
import pytest

from affix.plugins import hookimpl
from affix.plugins.manager import create_plugin_manager, upload_permissions
from support.upload_permissions import (
    BUILTIN_PERMISSIONS, assert_accepted_and_stored, assert_refused_and_nothing_stored, client_for,
    post_upload,
)


class MeetingsAndDocuments:
    """A plugin registered in-process, as a test or an embedding application would."""

    @hookimpl
    def affix_upload_permissions(self):
        return ["edit_meetings", "edit_documents"]


def test_builtin_plugin_alone_authorises_the_four_core_permissions():
    manager = create_plugin_manager(load_entry_points=False)
    assert upload_permissions(manager) == BUILTIN_PERMISSIONS


def test_registered_plugin_adds_its_permissions_to_the_builtin_ones():
    manager = create_plugin_manager(load_entry_points=False)
    manager.register(MeetingsAndDocuments())
    assert upload_permissions(manager) == BUILTIN_PERMISSIONS | {"edit_meetings", "edit_documents"}


def test_user_who_may_only_view_is_refused(client, people, stored):
    assert_refused_and_nothing_stored(post_upload(client, people, "eve"), stored)


@pytest.mark.parametrize("permission", sorted(BUILTIN_PERMISSIONS))
def test_each_builtin_permission_authorises_an_upload(client, people, stored, permission):
    people.add("member", permissions=[permission])
    assert_accepted_and_stored(post_upload(client, people, "member"), stored)


def test_admin_without_any_membership_may_upload(client, people, stored):
    people.add("root", admin=True)
    assert_accepted_and_stored(post_upload(client, people, "root"), stored)


def test_permission_of_a_registered_plugin_authorises_an_upload(settings, people, stored):
    manager = create_plugin_manager(load_entry_points=False)
    manager.register(MeetingsAndDocuments())
    people.add("mia", permissions=["edit_documents"])
    assert_accepted_and_stored(post_upload(client_for(settings, manager), people, "mia"), stored)
