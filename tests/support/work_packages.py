"""Work packages, the built-in container type, through falcon.testing: their JSON documents,
creating them and changing them (which claims the attachments they link)."""
PROJECT_HREF = "/api/v3/projects/1"
SUBJECT = "Fix the roof"
CREATE_PATHS = ["/api/v3/work_packages", "/api/v3/projects/1/work_packages"]


def link(attachment_id) -> dict:
    return {"href": f"/api/v3/attachments/{attachment_id}"}


def document(subject=SUBJECT, attachments=None, project=PROJECT_HREF) -> dict:
    """A work package's JSON; ``attachments`` is the raw value of ``_links.attachments``."""
    links = {}
    if project is not None:
        links["project"] = {"href": project}
    if attachments is not None:
        links["attachments"] = attachments
    body = {"_links": links}
    if subject is not None:
        body["subject"] = subject
    return body


def create(client, people, login, body, path=CREATE_PATHS[0]):
    return client.simulate_post(path, json=body, headers=people.auth(login))


def created(client, people, login, subject=SUBJECT, attachment_ids=()) -> int:
    """The id of a work package created through the API."""
    response = create(client, people, login,
                      document(subject, [link(i) for i in attachment_ids]))
    assert response.status_code == 201, response.json
    return response.json["id"]


def current_lock_version(client, people, login, work_package_id):
    """The ``lockVersion`` ``login`` sees, as a client reads it before a change; None when they
    may not see the work package."""
    response = client.simulate_get(f"/api/v3/work_packages/{work_package_id}",
                                   headers=people.auth(login))
    return response.json["lockVersion"] if response.status_code == 200 else None


def patch(client, people, login, work_package_id, body):
    """A change made as a client makes it: on the ``lockVersion`` it read, unless ``body``
    names one itself."""
    version = current_lock_version(client, people, login, work_package_id)
    if "lockVersion" not in body and version is not None:
        body = {**body, "lockVersion": version}
    return client.simulate_patch(
        f"/api/v3/work_packages/{work_package_id}", json=body, headers=people.auth(login)
    )
