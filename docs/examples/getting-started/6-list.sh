# the work package's attachments: the claimed upload, its container the work package
curl -s --fail-with-body -u "apikey:$KEY" http://127.0.0.1:8000/api/v3/work_packages/1/attachments
