"""The HAL errors affix answers with, the messages several tests expect, and asserting one on a
falcon.testing response."""
URN = "urn:openproject-org:api:v3:errors:"
REALM = 'Basic realm="affix"'

UNAUTHENTICATED = "You need to be authenticated to access this resource."
WRONG_CREDENTIALS = "You did not provide the correct credentials."
NOT_AUTHORIZED = "You are not authorized to access this resource."
# a 403 names the permission missing, or the several of which any one would do
MAY_NOT_UPLOAD = (f"{NOT_AUTHORIZED} Missing permission: one of add_work_packages, "
                  "edit_messages, edit_wiki_pages, edit_work_packages.")
MAY_NOT_ADD_ATTACHMENTS = (f"{NOT_AUTHORIZED} Missing permission: one of "
                           "add_work_package_attachments, edit_work_packages.")
MAY_NOT_VIEW_WORK_PACKAGES = f"{NOT_AUTHORIZED} Missing permission: view_work_packages."
MAY_NOT_ADD_WORK_PACKAGES = f"{NOT_AUTHORIZED} Missing permission: add_work_packages."
MAY_NOT_EDIT_WORK_PACKAGES = f"{NOT_AUTHORIZED} Missing permission: edit_work_packages."
MAY_NOT_DELETE_WORK_PACKAGES = f"{NOT_AUTHORIZED} Missing permission: delete_work_packages."
NOT_FOUND = "The requested resource could not be found."
NO_SUCH_ATTACHMENT = "The specified attachment does not exist."
# a claim naming an attachment that is not there, or one already claimed elsewhere
DOES_NOT_EXIST = "Attachments does not exist."
CANNOT_BE_CHANGED = "Attachments cannot be changed."
# a database or a store out of reach (503)
UNAVAILABLE = "The service is temporarily unavailable. Please try again later."
# a full disk or quota: (status, identifier, message), for ``assert_error(response, *FULL)``
FULL = (507, "InsufficientStorage", "There is not enough storage space left to store the file.")


def hal_error(identifier, message, attribute=None) -> dict:
    """The exact HAL body of an error."""
    body = {"_type": "Error",
            "errorIdentifier": URN + identifier,
            "message": message}
    if attribute is not None:
        body["_embedded"] = {"details": {"attribute": attribute}}
    return body


def assert_error(response, status, identifier, message, attribute=None):
    assert response.status_code == status
    assert response.headers["content-type"] == "application/hal+json"
    assert response.json == hal_error(identifier, message, attribute)


def assert_unauthenticated(response, message=UNAUTHENTICATED):
    assert_error(response, 401, "Unauthenticated", message)
    assert response.headers["WWW-Authenticate"] == REALM
