"""affix's own behaviour, registered through the same hooks as any third-party plugin."""
from plugins import hookimpl


@hookimpl
def affix_upload_permissions():
    # OpenProject's own list: anyone who may edit or add content somewhere may upload
    return ["edit_work_packages", "add_work_packages", "edit_messages", "edit_wiki_pages"]
