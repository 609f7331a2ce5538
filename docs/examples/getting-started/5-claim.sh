# a work package in the project demo that claims attachment 1: 201 with the work package
curl -s --fail-with-body -u "apikey:$KEY" -H 'Content-Type: application/json' \
  -d '{"subject": "Shopping", "_links": {"project": {"href": "/api/v3/projects/demo"},
       "attachments": [{"href": "/api/v3/attachments/1"}]}}' \
  http://127.0.0.1:8000/api/v3/work_packages
