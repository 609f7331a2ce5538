# the open work packages of the project demo that have attachments, the latest changed first
curl -s -u apikey:$KEY -G http://127.0.0.1:8000/api/v3/projects/demo/work_packages \
  --data-urlencode 'filters=[{"status": {"operator": "o", "values": []}},
                             {"attachments": {"operator": "*", "values": []}}]' \
  --data-urlencode 'sortBy=[["updatedAt", "desc"]]' -d pageSize=50
