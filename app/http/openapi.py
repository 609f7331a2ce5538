"""The OpenAPI document of affix's own API, served at ``/api/v3/spec.json``.

Built per request from the container types the app has, with the prefix the app is mounted at
as its server, so that it describes exactly the API this app answers.
"""
from affix.storage.models import STATUSES
from affix.plugins.builtin import WORK_PACKAGE

HAL = "application/hal+json"
ERROR_STATUSES = {
    "400": "The request body is malformed.",
    "401": "No, or wrong, credentials.",
    "403": "The user lacks the permission.",
    "404": "No such resource, or one the user may not see.",
    "406": "No Content-Type.",
    "409": "The change was made on an older lockVersion, or names none.",
    "415": "An unsupported Content-Type.",
    "416": "The requested range lies past the end of the file.",
    "422": "A property is invalid.",
    "503": "The database, the blob store or the upload's inspection (a plugin, clamd) is "
           "unavailable; retry later.",
    "507": "The storage is full.",
}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _hal(schema_name, description="OK"):
    return {"description": description, "content": {HAL: {"schema": _ref(schema_name)}}}


def _errors(*statuses):
    return {status: {"description": ERROR_STATUSES[status],
                     "content": {HAL: {"schema": _ref("Error")}}}
            for status in ("401",) + statuses}


def _id(name):
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1}}


# a project is addressed by its id or its identifier
PROJECT_KEY = {"name": "id", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}}
PAGE_PARAMETERS = [
    {"name": "offset", "in": "query", "schema": {"type": "integer"},
     "description": "The page, from 1"},
    {"name": "pageSize", "in": "query", "schema": {"type": "integer"},
     "description": "Elements per page (default 20, at most 1000; -1 for the most)"},
]
QUERY_PARAMETERS = PAGE_PARAMETERS + [
    {"name": "filters", "in": "query", "schema": {"type": "string"},
     "description": 'JSON: [{"status": {"operator": "o", "values": []}}] (the default); '
                    'id, project, subject, status, type, attachments'},
    {"name": "sortBy", "in": "query", "schema": {"type": "string"},
     "description": 'JSON: [["id", "asc"]] (the default)'},
]


def _operation(summary, responses, parameters=(), body=None):
    operation = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = body
    return operation


UPLOAD_BODY = {
    "required": True,
    "content": {"multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["metadata", "file"],
            "properties": {
                "metadata": {"type": "string",
                             "description": 'JSON: {"fileName": "…", "description": "…"}'},
                "file": {"type": "string", "format": "binary"},
            },
        },
    }},
}


def _parts(**more_properties):
    """An array of an upload's parts: each its number and size, and ``more_properties``."""
    properties = {"partNumber": {"type": "integer"}, "size": {"type": "integer"},
                  **more_properties}
    return {"type": "array", "items": {"type": "object", "required": list(properties),
                                       "properties": properties}}


# how an upload in parts is cut: parts of partSize bytes (at least 5 MiB), the last shorter
PART_PLAN = {"fileSize": {"type": "integer", "minimum": 0},
             "partSize": {"type": "integer", "minimum": 5 * 1024 * 1024},
             "partCount": {"type": "integer", "minimum": 1, "maximum": 10_000}}
PREPARE_BODY = {
    "required": True,
    "content": {"multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["metadata"],
            "properties": {
                "metadata": {"type": "string", "description": (
                    'JSON: {"fileName": "…", "fileSize": 123, "contentType": "…", '
                    '"description": "…", "parts": false}; the only part. "parts": true asks '
                    'for an upload in parts, straight to the bucket (answered with '
                    'partSize, partCount and the links uploadParts and partUrls, no '
                    'addAttachment form) where the store takes one')},
            },
        },
    }},
}
WORK_PACKAGE_BODY = {"required": True,
                     "content": {"application/json": {"schema": _ref("WorkPackageWrite")}}}
LINK = {"type": "object", "properties": {"href": {"type": ["string", "null"]},
                                         "title": {"type": "string"},
                                         "method": {"type": "string"}}}
SCHEMAS = {
    "Link": LINK,
    "Error": {
        "type": "object", "required": ["_type", "errorIdentifier", "message"],
        "properties": {"_type": {"const": "Error"}, "errorIdentifier": {"type": "string"},
                       "message": {"type": "string"}, "_embedded": {"type": "object"}},
    },
    "Formattable": {
        "type": "object", "required": ["format", "raw", "html"],
        "properties": {"format": {"const": "plain"}, "raw": {"type": "string"},
                       "html": {"type": "string"}},
    },
    "Attachment": {
        "type": "object",
        "required": ["_type", "id", "fileName", "fileSize", "description", "contentType",
                     "digest", "createdAt", "_links"],
        "properties": {
            "_type": {"const": "Attachment"}, "id": {"type": "integer"},
            "title": {"type": "string"}, "fileName": {"type": "string"},
            "fileSize": {"type": "integer", "minimum": 0},
            "filesize": {"type": "integer", "minimum": 0},
            "description": _ref("Formattable"), "contentType": {"type": "string"},
            "digest": {"type": "object", "properties": {"algorithm": {"const": "md5"},
                                                        "hash": {"type": "string"}}},
            "createdAt": {"type": "string", "format": "date-time"},
            "status": {"enum": list(STATUSES)},
            "_links": {"type": "object", "additionalProperties": _ref("Link")},
        },
    },
    "AttachmentUpload": {
        "type": "object", "required": ["_type", "id", "fileName", "_links"],
        "properties": {
            "_type": {"const": "AttachmentUpload"}, "id": {"type": "integer"},
            "fileName": {"type": "string"}, "description": _ref("Formattable"),
            "createdAt": {"type": "string", "format": "date-time"},
            "_links": {
                "type": "object",
                "required": ["self", "author", "completeUpload"],
                "properties": {
                    "addAttachment": {
                        "type": "object", "required": ["href", "method", "form_fields"],
                        "description": "POST these fields in this order, then the file as "
                                       "the part `file`, as multipart/form-data to href",
                        "properties": {
                            "href": {"type": "string"}, "method": {"const": "post"},
                            "form_fields": {"type": "object",
                                            "additionalProperties": {"type": "string"}}}},
                },
                "additionalProperties": _ref("Link"),
            },
            **PART_PLAN,
        },
    },
    "UploadParts": {
        "type": "object", "required": ["_type", "parts", "_links", *PART_PLAN],
        "description": "The parts the bucket holds of an upload in parts (ListParts): a "
                       "client that resumes sends the others",
        "properties": {
            "_type": {"const": "UploadParts"}, **PART_PLAN,
            "parts": _parts(),
            "_links": {"type": "object", "additionalProperties": _ref("Link")},
        },
    },
    "UploadPartUrls": {
        "type": "object", "required": ["_type", "expiresAt", "parts", *PART_PLAN],
        "description": "Pre-signed UploadPart URLs: PUT exactly size bytes of the part to "
                       "href before expiresAt; each is bound to this upload and part number",
        "properties": {
            "_type": {"const": "UploadPartUrls"}, **PART_PLAN,
            "expiresAt": {"type": "string", "format": "date-time"},
            "parts": _parts(href={"type": "string"}, method={"const": "put"}),
            "_links": {"type": "object", "additionalProperties": _ref("Link")},
        },
    },
    "Collection": {
        "type": "object", "required": ["_type", "total", "count", "_embedded"],
        "properties": {
            "_type": {"const": "Collection"}, "total": {"type": "integer"},
            "count": {"type": "integer"},
            "_embedded": {"type": "object", "properties": {
                "elements": {"type": "array", "items": _ref("Attachment")}}},
        },
    },
    "Claim": {
        "type": "object", "required": ["_links"],
        "properties": {"_links": {"type": "object", "properties": {
            "attachments": {"type": "array", "items": _ref("Link")}}}},
    },
    "WorkPackageWrite": {
        "type": "object",
        "properties": {"subject": {"type": "string", "maxLength": 255},
                       "lockVersion": {"type": "integer",
                                       "description": "required when changing one"},
                       "_links": {"type": "object", "properties": {
                           "project": _ref("Link"), "type": _ref("Link"),
                           "status": _ref("Link"), "priority": _ref("Link"),
                           "attachments": {"type": "array", "items": _ref("Link")}}}},
    },
    "WorkPackage": {
        "type": "object", "required": ["_type", "id", "lockVersion", "subject", "_links"],
        "properties": {"_type": {"const": "WorkPackage"}, "id": {"type": "integer"},
                       "lockVersion": {"type": "integer"}, "subject": {"type": "string"},
                       "createdAt": {"type": "string", "format": "date-time"},
                       "updatedAt": {"type": "string", "format": "date-time"},
                       "_links": {"type": "object"}, "_embedded": {"type": "object"}},
    },
    "WorkPackageCollection": {
        "type": "object",
        "required": ["_type", "total", "count", "pageSize", "offset", "_embedded", "_links"],
        "properties": {
            "_type": {"const": "WorkPackageCollection"}, "total": {"type": "integer"},
            "count": {"type": "integer"}, "pageSize": {"type": "integer"},
            "offset": {"type": "integer"}, "_links": {"type": "object"},
            "_embedded": {"type": "object", "properties": {
                "elements": {"type": "array", "items": _ref("WorkPackage")}}},
        },
    },
    "ProjectCollection": {
        "type": "object",
        "required": ["_type", "total", "count", "pageSize", "offset", "_embedded", "_links"],
        "properties": {
            "_type": {"const": "Collection"}, "total": {"type": "integer"},
            "count": {"type": "integer"}, "pageSize": {"type": "integer"},
            "offset": {"type": "integer"}, "_links": {"type": "object"},
            "_embedded": {"type": "object", "properties": {
                "elements": {"type": "array", "items": _ref("Project")}}},
        },
    },
    "Type": {
        "type": "object",
        "required": ["_type", "id", "name", "position", "isDefault", "isMilestone", "_links"],
        "properties": {"_type": {"const": "Type"}, "id": {"type": "integer"},
                       "name": {"type": "string"}, "color": {"type": ["string", "null"]},
                       "position": {"type": "integer"}, "isDefault": {"type": "boolean"},
                       "isMilestone": {"type": "boolean"},
                       "createdAt": {"type": "string", "format": "date-time"},
                       "updatedAt": {"type": "string", "format": "date-time"},
                       "_links": {"type": "object"}},
    },
    "Status": {
        "type": "object",
        "required": ["_type", "id", "name", "position", "isDefault", "isClosed", "_links"],
        "properties": {"_type": {"const": "Status"}, "id": {"type": "integer"},
                       "name": {"type": "string"}, "color": {"type": ["string", "null"]},
                       "position": {"type": "integer"}, "isDefault": {"type": "boolean"},
                       "isClosed": {"type": "boolean"}, "_links": {"type": "object"}},
    },
    "Priority": {
        "type": "object",
        "required": ["_type", "id", "name", "position", "isDefault", "isActive", "_links"],
        "properties": {"_type": {"const": "Priority"}, "id": {"type": "integer"},
                       "name": {"type": "string"}, "color": {"type": ["string", "null"]},
                       "position": {"type": "integer"}, "isDefault": {"type": "boolean"},
                       "isActive": {"type": "boolean"}, "_links": {"type": "object"}},
    },
    "AttributeCollection": {
        "type": "object", "required": ["_type", "total", "count", "_embedded", "_links"],
        "properties": {"_type": {"const": "Collection"}, "total": {"type": "integer"},
                       "count": {"type": "integer"}, "_links": {"type": "object"},
                       "_embedded": {"type": "object"}},
    },
    "Form": {
        "type": "object", "required": ["_type", "_embedded", "_links"],
        "properties": {"_type": {"const": "Form"}, "_links": {"type": "object"},
                       "_embedded": {"type": "object",
                                     "required": ["payload", "schema", "validationErrors"]}},
    },
    "Configuration": {
        "type": "object", "required": ["_type", "maximumAttachmentFileSize", "_links"],
        "properties": {"_type": {"const": "Configuration"},
                       "maximumAttachmentFileSize": {"type": "integer"},
                       "hostName": {"type": "string"},
                       "perPageOptions": {"type": "array", "items": {"type": "integer"}},
                       "activeFeatureFlags": {"type": "array", "items": {"type": "string"}},
                       "_links": {"type": "object"}},
    },
    "Project": {
        "type": "object", "required": ["_type", "id", "identifier", "name"],
        "properties": {"_type": {"const": "Project"}, "id": {"type": "integer"},
                       "identifier": {"type": "string"}, "name": {"type": "string"},
                       "_links": {"type": "object"}},
    },
    "User": {
        "type": "object", "required": ["_type", "id", "name"],
        "properties": {"_type": {"const": "User"}, "id": {"type": "integer"},
                       "name": {"type": "string"}, "login": {"type": "string"},
                       "admin": {"type": "boolean"}, "status": {"type": "string"},
                       "_links": {"type": "object"}},
    },
    "Health": {"type": "object", "required": ["status"],
               "properties": {"status": {"const": "ok"}}},
    "Readiness": {"type": "object", "required": ["status", "schemaVersion"],
                  "properties": {"status": {"const": "ready"},
                                 "schemaVersion": {"type": "integer"}}},
    "Root": {"type": "object", "required": ["_type", "_links"],
             "properties": {"_type": {"const": "Root"}, "instanceName": {"type": "string"},
                            "_links": {"type": "object"}}},
}


def _prepare_operation(summary, parameters):
    return _operation(
        summary,
        {"201": _hal("AttachmentUpload", "Prepared"),
         **_errors("400", "403", "404", "406", "415", "422", "503")},
        parameters, PREPARE_BODY,
    )


def _attachment_paths():
    attachment = [_id("id")]
    content = _operation(
        "The attachment's bytes (single byte ranges answered 206), or with S3 storage a "
        "redirect to a pre-signed URL of them",
        {"200": {"description": "The bytes", "content": {"*/*": {}}},
         "206": {"description": "One byte range", "content": {"*/*": {}}},
         "302": {"description": "S3 storage: Location is a pre-signed URL of the bytes",
                 "headers": {"Location": {"schema": {"type": "string"}}}},
         **_errors("403", "404", "416")},
        attachment,
    )
    return {
        "/health": {"get": {
            "summary": "Whether the process serves requests (asks nothing of the database)",
            "security": [], "responses": {"200": _hal("Health")}}},
        "/health/ready": {"get": {
            "summary": "Whether this node can serve the API: database, schema, blob store",
            "security": [], "responses": {
                "200": _hal("Readiness"),
                "503": {"description": "Not ready; the message says why",
                        "content": {HAL: {"schema": _ref("Error")}}}}}},
        "/api/v3": {"get": _operation("The API root", {"200": _hal("Root"), **_errors()})},
        "/api/v3/spec.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        "/api/v3/attachments": {"post": _operation(
            "Upload an attachment without a container",
            {"200": _hal("Attachment"), **_errors("400", "403", "406", "415", "422", "503",
                                                  "507")},
            body=UPLOAD_BODY,
        )},
        "/api/v3/attachments/{id}": {
            "get": _operation("An attachment", {"200": _hal("Attachment"), **_errors("404")},
                              attachment),
            "delete": _operation("Delete an attachment",
                                 {"204": {"description": "Deleted"}, **_errors("403", "404")},
                                 attachment),
        },
        "/api/v3/attachments/prepare": {"post": _prepare_operation(
            "Prepare a direct upload to the object store, without a container", ())},
        "/api/v3/attachment_upload/{id}": {"get": _operation(
            "A direct upload still waiting for its file, to its author: as prepare answered "
            "it, with its form signed anew to expire when prepare's does",
            {"200": _hal("AttachmentUpload"), **_errors("403", "404", "503")}, attachment)},
        "/api/v3/attachments/{id}/uploaded": {"get": _operation(
            "Complete a direct upload: its author only, once the file is in the store",
            {"200": _hal("Attachment"), **_errors("403", "404", "422", "503")}, attachment)},
        "/api/v3/attachments/{id}/parts": {"get": _operation(
            "The parts the bucket holds of an upload in parts: its author only",
            {"200": _hal("UploadParts"), **_errors("404", "503")}, attachment)},
        "/api/v3/attachments/{id}/parts/urls": {"get": _operation(
            "Pre-signed URLs of parts of an upload in parts: its author only",
            {"200": _hal("UploadPartUrls"), **_errors("400", "404", "503")},
            [*attachment, {"name": "partNumbers", "in": "query", "required": True,
                           "schema": {"type": "string", "pattern": "^[0-9]+(,[0-9]+)*$"},
                           "description": "Part numbers separated by commas, at most 100"}])},
        "/api/v3/attachments/{id}/download": {"get": content},
        "/api/v3/attachments/{id}/content": {"get": content},
        "/api/v3/users/{id}": {"get": _operation("A user", {"200": _hal("User"),
                                                            **_errors("404")}, [_id("id")])},
        "/api/v3/configuration": {"get": _operation(
            "The configuration a client reads: maximumAttachmentFileSize",
            {"200": _hal("Configuration"), **_errors()})},
        "/api/v3/projects": {"get": _operation(
            "The projects the user is a member of, a page of them",
            {"200": _hal("ProjectCollection"), **_errors()}, PAGE_PARAMETERS)},
        "/api/v3/projects/{id}": {"get": _operation(
            "A project, by id or identifier", {"200": _hal("Project"), **_errors("404")},
            [PROJECT_KEY])},
    }


def _attribute_paths(segment, schema, what):
    return {
        f"/api/v3/{segment}": {"get": _operation(
            f"Every {what}", {"200": _hal("AttributeCollection"), **_errors("403")})},
        f"/api/v3/{segment}/{{id}}": {"get": _operation(
            f"A {what}", {"200": _hal(schema), **_errors("403", "404")}, [_id("id")])},
    }


def _work_package_paths():
    created = {"201": _hal("WorkPackage", "Created"), **_errors("400", "403", "406", "415",
                                                                "422")}
    listed = {"200": _hal("WorkPackageCollection"), **_errors("400", "403")}
    form = {"200": _hal("Form"), **_errors("400", "403", "406", "415", "422")}
    return {
        "/api/v3/work_packages": {
            "get": _operation("The work packages the user may see, a page of them", listed,
                              QUERY_PARAMETERS),
            "post": _operation("Create a work package, claiming attachments", created,
                               body=WORK_PACKAGE_BODY),
        },
        "/api/v3/projects/{id}/work_packages": {
            "get": _operation("A project's work packages, a page of them",
                              {**listed, **_errors("400", "403", "404")},
                              [PROJECT_KEY, *QUERY_PARAMETERS]),
            "post": _operation("Create a work package in a project",
                               {**created, **_errors("400", "403", "404", "406", "415",
                                                     "422")},
                               [PROJECT_KEY], WORK_PACKAGE_BODY),
        },
        "/api/v3/projects/{id}/types": {"get": _operation(
            "The types of a project's work packages",
            {"200": _hal("AttributeCollection"), **_errors("403", "404")}, [PROJECT_KEY])},
        "/api/v3/work_packages/{id}": {
            "get": _operation("A work package", {"200": _hal("WorkPackage"), **_errors("404")},
                              [_id("id")]),
            "patch": _operation("Change a work package on its lockVersion, claiming attachments",
                                {"200": _hal("WorkPackage"), **_errors("400", "403", "404",
                                                                       "406", "409", "415",
                                                                       "422")},
                                [_id("id")], WORK_PACKAGE_BODY),
            "delete": _operation("Delete a work package, its attachments and their bytes",
                                 {"204": {"description": "Deleted"}, **_errors("403", "404")},
                                 [_id("id")]),
        },
        "/api/v3/work_packages/form": {"post": _operation(
            "Check a new work package without making it: OpenProject's Form", form,
            body=WORK_PACKAGE_BODY)},
        "/api/v3/projects/{id}/work_packages/form": {"post": _operation(
            "Check a new work package of a project without making it",
            {**form, **_errors("400", "403", "404", "406", "415", "422")}, [PROJECT_KEY],
            WORK_PACKAGE_BODY)},
        "/api/v3/work_packages/{id}/form": {"post": _operation(
            "Check a change of a work package without making it",
            {**form, **_errors("400", "403", "404", "406", "409", "415", "422")}, [_id("id")],
            WORK_PACKAGE_BODY)},
        **_attribute_paths("types", "Type", "type"),
        **_attribute_paths("statuses", "Status", "status"),
        **_attribute_paths("priorities", "Priority", "priority"),
    }


def _upload_or_claim(kind):
    errors = _errors("400", "403", "404", "406", "415", "422", "503", "507")
    if kind.name == WORK_PACKAGE:
        return _operation(f"Upload into a {kind.name} (multipart only)",
                          {"200": _hal("Attachment"), **errors}, [_id("id")], UPLOAD_BODY)
    return _operation(
        f"Upload into a {kind.name} (multipart) or claim uploads for it (JSON)",
        {"200": {"description": "The attachment (upload) or the collection (claim)",
                 "content": {HAL: {"schema": {"oneOf": [_ref("Attachment"),
                                                        _ref("Collection")]}}}},
         **errors},
        [_id("id")],
        {"required": True, "content": {**UPLOAD_BODY["content"], "application/json": {
            "schema": _ref("Claim")}}},
    )


def _container_paths(kind):
    return {f"/api/v3/{kind.segment}/{{id}}/attachments/prepare": {
        "post": _prepare_operation(f"Prepare a direct upload into a {kind.name}", [_id("id")]),
    }, f"/api/v3/{kind.segment}/{{id}}/attachments": {
        "get": _operation(f"The attachments of a {kind.name}",
                          {"200": _hal("Collection"), **_errors("404")}, [_id("id")]),
        "post": _upload_or_claim(kind),
    }}


def _header(description, schema_type="string"):
    return {"description": description, "schema": {"type": schema_type}}


TUS_REQUEST_HEADERS = {
    "Tus-Resumable": {"name": "Tus-Resumable", "in": "header", "required": True,
                      "schema": {"const": "1.0.0"}},
    "Upload-Length": {"name": "Upload-Length", "in": "header", "required": True,
                      "schema": {"type": "integer", "minimum": 0}},
    "Upload-Defer-Length": {"name": "Upload-Defer-Length", "in": "header",
                            "schema": {"const": "1"},
                            "description": "creation-defer-length: the length comes with a "
                                           "later PATCH's Upload-Length (instead of "
                                           "Upload-Length here)"},
    "Upload-Concat": {"name": "Upload-Concat", "in": "header", "schema": {"type": "string"},
                      "description": "concatenation: `partial` for a partial upload (no "
                                     "metadata needed, never an attachment of its own), or "
                                     "`final;` and the space-separated URLs of finished "
                                     "partial uploads of the same user, joined in order into "
                                     "the attachment (no Upload-Length then)"},
    "Upload-Metadata": {"name": "Upload-Metadata", "in": "header",
                        "schema": {"type": "string"},
                        "description": "filename (or name), description, container (an href), "
                                       "each key followed by its Base64 value"},
    "Upload-Offset": {"name": "Upload-Offset", "in": "header", "required": True,
                      "schema": {"type": "integer", "minimum": 0}},
    "Upload-Checksum": {"name": "Upload-Checksum", "in": "header",
                        "schema": {"type": "string"},
                        "description": "sha1, md5 or sha256, a space, the Base64 digest"},
}
TUS_PROGRESS_HEADERS = {
    "Tus-Resumable": _header("1.0.0"),
    "Upload-Offset": _header("Bytes the upload has", "integer"),
    "Upload-Expires": _header("When an unfinished upload is removed (an HTTP date)"),
    "Link": _header('Once finished: </api/v3/attachments/{id}>; rel="attachment"'),
}
TUS_BYTES = {"content": {"application/offset+octet-stream": {
    "schema": {"type": "string", "format": "binary"}}}}


def _tus_paths():
    """Resumable uploads (tus 1.0), when AFFIX_TUS_MAX_SIZE is not 0."""
    token = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    headers = TUS_REQUEST_HEADERS
    tus_errors = {
        "409": {"description": "Upload-Offset is not the offset the upload has"},
        "412": {"description": "Tus-Resumable is not 1.0.0"},
        "413": {"description": "More bytes than Upload-Length, or than Tus-Max-Size (an upload "
                               "of deferred length, or a final upload's partials, in sum)"},
        "423": {"description": "Another PATCH is writing the upload"},
        "460": {"description": "The bytes do not match Upload-Checksum: none stored"},
    }
    return {
        "/api/v3/attachments/tus": {
            "options": {
                "summary": "Discover tus: version, extensions, maximum size",
                "security": [],
                "responses": {"204": {"description": "What this server speaks", "headers": {
                    name: _header(name) for name in (
                        "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size",
                        "Tus-Checksum-Algorithm")}}}},
            "post": _operation(
                "Create a resumable upload (its first bytes in the body, optionally)",
                {"201": {"description": "Created: Location is the upload's URL",
                         "headers": {"Location": _header("The upload's URL"),
                                     **TUS_PROGRESS_HEADERS}},
                 **_errors("400", "403", "404", "422", "503"),
                 **{status: tus_errors[status] for status in ("412", "413", "460")}},
                [headers["Tus-Resumable"],
                 {**headers["Upload-Length"], "required": False, "description":
                  "The file's size; none with Upload-Defer-Length or a final Upload-Concat"},
                 headers["Upload-Defer-Length"], headers["Upload-Concat"],
                 headers["Upload-Metadata"], headers["Upload-Checksum"]],
                {"required": False, **TUS_BYTES},
            ),
        },
        "/api/v3/attachments/tus/{id}": {
            "head": _operation(
                "How far an upload is",
                {"200": {"description": "Its offset and length", "headers": {
                    "Upload-Length": _header("The file's size (unless deferred)", "integer"),
                    "Upload-Defer-Length": _header("1 while the length is not declared"),
                    "Upload-Concat": _header("`partial`, or `final;` and the URLs joined"),
                    **TUS_PROGRESS_HEADERS}},
                 **_errors("404"), "412": tus_errors["412"]},
                [token, headers["Tus-Resumable"]]),
            "patch": _operation(
                "The upload's next bytes, at its offset; the last one makes it an attachment "
                "(403 for a final upload, which takes none)",
                {"204": {"description": "Stored durably", "headers": TUS_PROGRESS_HEADERS},
                 **_errors("400", "403", "404", "415", "422", "503", "507"), **tus_errors},
                [token, headers["Tus-Resumable"], headers["Upload-Offset"],
                 {**headers["Upload-Length"], "required": False, "description":
                  "The length of an upload created with Upload-Defer-Length, once known"},
                 headers["Upload-Checksum"]],
                {"required": True, **TUS_BYTES}),
            "post": _operation(
                "A PATCH, HEAD or DELETE sent as a POST (X-HTTP-Method-Override), for clients "
                "behind proxies that let only GET and POST through",
                {"200": {"description": "As a HEAD"},
                 "204": {"description": "As a PATCH or a DELETE"},
                 **_errors("400", "403", "404", "415", "422", "503", "507"), **tus_errors,
                 "405": {"description": "No X-HTTP-Method-Override of PATCH, HEAD or DELETE"}},
                [token, headers["Tus-Resumable"],
                 {"name": "X-HTTP-Method-Override", "in": "header", "required": True,
                  "schema": {"enum": ["PATCH", "HEAD", "DELETE"]}},
                 {**headers["Upload-Offset"], "required": False}, headers["Upload-Checksum"]],
                {"required": False, **TUS_BYTES}),
            "delete": _operation(
                "Remove an upload and its bytes (an attachment it became stays)",
                {"204": {"description": "Removed"}, **_errors("404"),
                 "412": tus_errors["412"], "423": tus_errors["423"]},
                [token, headers["Tus-Resumable"]]),
        },
    }


def _head_of(get):
    """The HEAD operation of a ``get``: its answers' statuses and headers, no body."""
    return {**get, "summary": f"{get['summary']}: the headers alone",
            "responses": {status: {key: value for key, value in response.items()
                                   if key != "content"}
                          for status, response in get["responses"].items()}}


def openapi_document(base, container_types, tus=False) -> dict:
    paths = _attachment_paths()
    if tus:
        paths.update(_tus_paths())
    if WORK_PACKAGE in container_types:
        paths.update(_work_package_paths())
    for kind in container_types:
        paths.update(_container_paths(kind))
    for operations in paths.values():
        # every GET resource answers HEAD (affix.app.http.routing.App)
        if "get" in operations and "head" not in operations:
            operations["head"] = _head_of(operations["get"])
    return {
        "openapi": "3.1.0",
        "info": {"title": "affix", "version": "3",
                 "description": "Attachments for OpenProject's API v3."},
        "servers": [{"url": base or "/"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "basic",
                           "description": "user name `apikey`, the API key as password"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


class OpenApiResource:
    """Public: a client needs the document before it has a key."""

    auth_required = False

    def __init__(self, container_types, tus):
        self.container_types = container_types
        # whether resumable uploads are served
        self.tus = tus

    def on_get(self, req, resp):
        resp.content_type = "application/json"
        resp.media = openapi_document(req.root_path, self.container_types, self.tus)
