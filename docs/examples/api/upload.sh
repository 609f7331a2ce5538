# an upload without a container, with a description: 200 with the attachment
curl -s -u apikey:$KEY \
  -F 'metadata={"fileName":"cat.png","description":{"raw":"A cute cat"}};type=application/json' \
  -F 'file=@cat.png' \
  http://127.0.0.1:8000/api/v3/attachments
