"""Upload a file to affix with tuspy, resumably; print the Link to the attachment it became.

Run with:  AFFIX_API_KEY=... python tuspy_upload.py https://files.example.org talk.mp4 \
               "The keynote" /api/v3/work_packages/12
(the container, last, is optional: without it, the upload waits to be claimed)
"""
import os
import sys

from tusclient import client


def upload(server, path, description="", container=None):
    tus = client.TusClient(server + "/api/v3/attachments/tus",
                           headers={"Authorization": "Bearer " + os.environ["AFFIX_API_KEY"]})
    metadata = {"filename": os.path.basename(path), "description": description}
    if container:
        metadata["container"] = container
    # a piece is one PATCH's body: keep it under the proxy's limit (nginx's client_max_body_size)
    uploader = tus.uploader(path, chunk_size=4 * 1024 * 1024, upload_checksum=True,
                            metadata=metadata)
    uploader.upload()                   # interrupted? the same with url=uploader.url resumes
    last = uploader.request             # the PATCH that brought the last byte
    return last.response_headers["link"] if last else None


if __name__ == "__main__":
    print(upload(*sys.argv[1:]))
