# 1. prepare: declare the file and its exact size in bytes (the only part is `metadata`);
#    201 with an AttachmentUpload. The size must be within AFFIX_MAX_ATTACHMENT_SIZE
#    (5 MiB by default)
curl -s -u apikey:$KEY -F "metadata={\"fileName\": \"talk.mp4\", \"fileSize\": $(stat -c %s talk.mp4)};type=application/json" \
     http://localhost:8000/api/v3/attachments/prepare > upload.json
# 2. upload: POST to the store exactly what _links.addAttachment says, its form_fields in
#    their order, then the file as the part `file`, last (bash)
fields=(); while IFS= read -r field; do fields+=(--form-string "$field"); done \
  < <(jq -r '._links.addAttachment.form_fields | to_entries[] | "\(.key)=\(.value)"' upload.json)
curl -s "${fields[@]}" -F file=@talk.mp4 "$(jq -r ._links.addAttachment.href upload.json)"
# 3. complete: 200 with the attachment, its md5 and content type found in the stored bytes
curl -s -u apikey:$KEY "http://localhost:8000$(jq -r ._links.completeUpload.href upload.json)"
