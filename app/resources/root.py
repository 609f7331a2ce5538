"""``/api/v3``: the entry point a HAL client starts from."""
from affix.app import representers


class RootResource:
    def __init__(self, instance_name):
        self.instance_name = instance_name

    def on_get(self, req, resp):
        resp.media = representers.root(req.root_path, self.instance_name, req.context.user)
