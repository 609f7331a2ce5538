"""``/api/v3``: the entry point a HAL client starts from."""
from affix.app.http import representers


class RootResource:
    def __init__(self, instance_name, work_packages):
        self.instance_name = instance_name
        self.work_packages = work_packages

    def on_get(self, req, resp):
        resp.media = representers.root(req.root_path, self.instance_name, req.context.user,
                                       work_packages=self.work_packages)
