"""What operators do about users and their API keys (``affix apikey``, ``affix user``): list
and revoke keys; lock, unlock and delete users.

Authentication reads keys and users afresh on every request
(:class:`affix.app.accounts.auth.Authenticator`), so each change here holds for every worker of
every node from its commit on.

A deleted user's attachments and work packages stay, as in OpenProject: they pass to one locked
user, made on the first deletion, that stands for every deleted user and is shown by OpenProject's
name for it (its ``DeletedUser``). Nobody names it: it has no key, no login anyone is told, and
no command finds it.
"""
import secrets

import peewee

from affix.storage.resumable import ResumableUploads

DELETED_USER_NAME = "Deleted user"


class AccountError(Exception):
    """No such user or key, or a user that cannot be deleted; the message says which."""


def find_user(catalog, login):
    """The user with ``login``, never the deleted user."""
    User = catalog.User
    user = User.get_or_none((User.login == login) & ~User.is_deleted_user)
    if user is None:
        raise AccountError(f"no user with the login {login!r}")
    return user


def find_project(catalog, identifier):
    """The project with ``identifier``."""
    project = catalog.Project.get_or_none(catalog.Project.identifier == identifier)
    if project is None:
        raise AccountError(f"no project {identifier!r}")
    return project


def keys_of(catalog, user):
    """The API keys of ``user``, oldest first."""
    ApiKey = catalog.ApiKey
    return list(ApiKey.select().where(ApiKey.user == user).order_by(ApiKey.id))


def revoke_key(catalog, key_id):
    """Delete the API key ``key_id``; the login of the user it was of."""
    ApiKey = catalog.ApiKey
    with catalog.write_transaction():
        key = catalog.by_id(ApiKey.select(ApiKey, catalog.User).join(catalog.User), ApiKey,
                            key_id)
        if key is None:
            raise AccountError(f"no API key with the id {key_id}")
        key.delete_instance()
    return key.user.login


def revoke_keys(catalog, login) -> int:
    """Delete every API key of the user ``login``; how many there were."""
    with catalog.write_transaction():
        user = find_user(catalog, login)
        return catalog.ApiKey.delete().where(catalog.ApiKey.user == user).execute()


def set_locked(catalog, login, locked: bool):
    """Lock the user ``login`` (every key of theirs is refused) or unlock them."""
    User = catalog.User
    with catalog.write_transaction():
        user = find_user(catalog, login)
        User.update(locked=locked).where(User.id == user.id).execute()


def delete_user(catalog, login):
    """Delete the user ``login``, their keys and their memberships; their attachments, work
    packages and unfinished resumable uploads pass to the deleted user (an unfinished upload
    can no longer be resumed and expires as any other). (user, keys deleted, attachments
    passed, work packages passed, the deleted user)."""
    with catalog.write_transaction():
        user = find_user(catalog, login)
        deleted_user = _the_deleted_user(catalog)
        keys = catalog.ApiKey.delete().where(catalog.ApiKey.user == user).execute()
        catalog.Membership.delete().where(catalog.Membership.user == user).execute()
        passed = [model.update(author=deleted_user).where(model.author == user).execute()
                  for model in (catalog.Attachment, catalog.WorkPackage,
                                ResumableUploads(catalog).ResumableUpload)]
        try:
            user.delete_instance()
        except peewee.IntegrityError as error:
            # a row that names the user and that affix does not know: a plugin's table, or
            # (PostgreSQL) an upload that committed meanwhile; the transaction rolls back
            raise AccountError(f"{login!r} is still named by rows affix does not move; nothing "
                               f"was changed ({error})") from None
    return user, keys, passed[0], passed[1], deleted_user


def _the_deleted_user(catalog):
    User = catalog.User
    existing = User.get_or_none(User.is_deleted_user)
    if existing is not None:
        return existing
    try:
        with catalog.database.atomic():
            # a login nobody chooses, and nobody could use: the user is locked
            return User.create(login=f"deleted-user-{secrets.token_hex(8)}",
                               name=DELETED_USER_NAME, locked=True, is_deleted_user=True)
    except peewee.IntegrityError:
        # another node's deletion made it meanwhile (the unique index on is_deleted_user)
        return User.get(User.is_deleted_user)
