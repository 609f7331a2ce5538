curl -s -u apikey:$KEY http://127.0.0.1:8000/api/v3/attachments/1                   # the attachment
curl -s -u apikey:$KEY -L -o copy.png http://127.0.0.1:8000/api/v3/attachments/1/download # bytes
curl -s -u apikey:$KEY -r 0-99 http://127.0.0.1:8000/api/v3/attachments/1/content   # a byte range
curl -s -u apikey:$KEY http://127.0.0.1:8000/api/v3/users/1                         # its author
