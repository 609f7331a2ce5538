# an upload without a container: 200 with the attachment, its id 1 on a fresh install
printf 'Buy milk.\n' > notes.txt
curl -s --fail-with-body -u "apikey:$KEY" \
  -F 'metadata={"fileName": "notes.txt"};type=application/json' \
  -F 'file=@notes.txt' \
  http://127.0.0.1:8000/api/v3/attachments
