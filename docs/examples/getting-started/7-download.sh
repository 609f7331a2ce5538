# the bytes of attachment 1, as they were uploaded
curl -s --fail-with-body -u "apikey:$KEY" http://127.0.0.1:8000/api/v3/attachments/1/download
