# a work package that claims attachment 1: 201 with the work package
curl -s -u apikey:$KEY -H 'Content-Type: application/json' \
  -d '{"subject": "Fix the cat", "_links": {"project": {"href": "/api/v3/projects/demo"},
       "attachments": [{"href": "/api/v3/attachments/1"}]}}' \
  http://127.0.0.1:8000/api/v3/work_packages
# another upload, attachment 2, claimed by changing the work package: 200
printf 'Buy milk.\n' > notes.txt
curl -s -u apikey:$KEY -F 'metadata={"fileName":"notes.txt"};type=application/json' \
  -F 'file=@notes.txt' http://127.0.0.1:8000/api/v3/attachments
curl -s -u apikey:$KEY -X PATCH -H 'Content-Type: application/json' \
  -d '{"lockVersion": 0, "_links": {"attachments": [{"href": "/api/v3/attachments/2"}]}}' \
  http://127.0.0.1:8000/api/v3/work_packages/1
