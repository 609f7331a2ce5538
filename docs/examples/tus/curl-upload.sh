# Upload talk.mp4 with tus, from where the server's copy stopped: run again after an
# interruption, it sends only the rest. Once the last byte is in, it prints the Link header that
# names the attachment. (curl holds the rest of the file in memory: for large files, use a tus
# client.)
server=http://127.0.0.1:8000
auth="apikey:$AFFIX_API_KEY"
# 1. create the upload, once; its address comes back in Location, kept in talk.mp4.upload
if [ ! -s talk.mp4.upload ]; then
  meta="filename $(printf talk.mp4 | base64 -w0),description $(printf 'The keynote' | base64 -w0)"
  curl -s -f -u "$auth" -D - -o /dev/null -X POST "$server/api/v3/attachments/tus" \
       -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $(stat -c %s talk.mp4)" \
       -H "Upload-Metadata: $meta" | tr -d '\r' | sed -n 's/^location: //Ip' > talk.mp4.upload
fi
upload="$server$(cat talk.mp4.upload)"
# 2. ask how far the server got: Upload-Offset, 0 for a new upload
offset=$(curl -s -f -u "$auth" -I -H 'Tus-Resumable: 1.0.0' "$upload" \
         | tr -d '\r' | sed -n 's/^upload-offset: //Ip')
# 3. send the rest from there; the 204 of the last byte names the attachment in Link
tail -c +$((offset + 1)) talk.mp4 \
  | curl -s -f -u "$auth" -D - -o /dev/null -X PATCH "$upload" -H 'Tus-Resumable: 1.0.0' \
         -H "Upload-Offset: $offset" -H 'Content-Type: application/offset+octet-stream' \
         --data-binary @- | tr -d '\r' | grep -i '^link:'
