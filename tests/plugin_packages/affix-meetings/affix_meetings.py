"""affix-meetings: meetings as a container type of affix, and an upload policy.

Members whose role holds ``edit_meetings`` may upload files and attach them to their project's
meetings; ``view_meetings`` lets them list a meeting's attachments. No file that looks like a
program is accepted.

It imports nothing of affix's own, so that it can be installed, upgraded and removed
independently: the marker is built from affix's project name, the container type is a plain
class with the attributes affix reads (see ``plugins.containers.ContainerType``), and affix finds
this module through the ``meetings`` entry point in the ``affix`` group.
"""
import peewee
import pluggy

hookimpl = pluggy.HookimplMarker("affix")

VIEW_MEETINGS = "view_meetings"
EDIT_MEETINGS = "edit_meetings"
# ids are 64-bit in every database affix supports: a larger id names no row, and handing it to
# a database driver raises instead of finding nothing
MAX_ID = 2**63 - 1
# Executables are recognised by name (what a Windows client would run on a double click) and by
# the content type affix sniffed from the bytes (what the file really is, whatever its name).
# The sniffed names are libmagic's: PE/DOS programs, ELF programs, and ELF position-independent
# programs, which older libmagic calls shared libraries.
EXECUTABLE_EXTENSIONS = (".exe", ".bat", ".cmd", ".com", ".msi", ".scr")
EXECUTABLE_TYPES = frozenset({
    "application/x-dosexec", "application/x-msdownload", "application/x-executable",
    "application/x-pie-executable", "application/x-sharedlib", "application/x-mach-binary",
})
NO_EXECUTABLES = "Executable files are not accepted."


@hookimpl
def affix_upload_permissions():
    """Editing meetings authorises uploads: the files that go into a meeting's agenda."""
    return [EDIT_MEETINGS]


@hookimpl
def affix_permissions():
    """The names ``affix role add`` must accept for this plugin."""
    return [VIEW_MEETINGS, EDIT_MEETINGS]


@hookimpl
def affix_container_types(catalog):
    """Meetings, kept in this plugin's own table of affix's database."""
    meeting_model = define_meeting_model(catalog)
    # every worker of every node runs this as it starts: schema_change makes them take turns
    with catalog.schema_change():
        catalog.database.create_tables([meeting_model], safe=True)
    return [MeetingType(meeting_model)]


@hookimpl
def affix_validate_upload(upload):
    """Refuse executables, in every upload and not only in uploads straight into a meeting: a
    file uploaded without a container can be claimed for a meeting later, and no policy is asked
    again then."""
    if (upload.file_name.lower().endswith(EXECUTABLE_EXTENSIONS)
            or upload.content_type in EXECUTABLE_TYPES):
        return NO_EXECUTABLES
    return None


def define_meeting_model(catalog):
    """The ``affix_meetings`` table, as a model bound to ``catalog``'s database.

    Defined per call rather than at module level: every affix app has its own database (tests
    run several in one process), and a module-level model would tie them all to one.
    """

    class Meeting(peewee.Model):
        # a foreign key, so that a meeting cannot outlive its project: affix asks the project
        # who may see and change the meeting's attachments
        project = peewee.ForeignKeyField(
            catalog.Project, column_name="project_id", on_delete="CASCADE"
        )
        title = peewee.CharField(max_length=255)

        class Meta:
            database = catalog.database
            table_name = "affix_meetings"

    return Meeting


class MeetingType:
    """The ``Meeting`` container type: what affix's ``ContainerType`` holds, duck-typed."""

    name = "Meeting"  # stored with every claimed attachment: never rename it
    segment = "meetings"  # /api/v3/meetings/{id}/attachments
    # affix checks that a user may see a container before it lets them add to it, and knows no
    # dependencies between permissions (OpenProject grants view_meetings with edit_meetings):
    # editing must be listed as a way of viewing, or an editor could not attach anything
    view = frozenset({VIEW_MEETINGS, EDIT_MEETINGS})
    add = frozenset({EDIT_MEETINGS})
    delete = frozenset({EDIT_MEETINGS})

    def __init__(self, meeting_model):
        self._meetings = meeting_model

    def find(self, meeting_id):
        if not 0 < meeting_id <= MAX_ID:
            return None
        return self._meetings.get_or_none(self._meetings.id == meeting_id)

    def project_of(self, meeting):
        # the foreign key deletes a meeting with its project, so there always is one
        return meeting.project

    def title_of(self, meeting):
        return meeting.title
