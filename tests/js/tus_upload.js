// Uploads a file to affix with tus-js-client, as a node program does: `node tus_upload.js
// <tus endpoint> <API key> <file> parallel|deferred`. "parallel" reads the file by its path in
// four partial uploads at once, then the final one that joins them (concatenation); "deferred"
// reads it as a stream whose length nobody knows until it ends (creation-defer-length).
// Prints what the last answer says the upload became: {"url": ..., "link": ...}.
"use strict";
const fs = require("node:fs");
const stream = require("node:stream");
const path = require("node:path");
const tus = require("tus-js-client");

const [endpoint, apiKey, file, mode] = process.argv.slice(2);
const WAYS = {
  parallel: () => ({ source: fs.createReadStream(file), options: { parallelUploads: 4 } }),
  deferred: () => ({
    // a pipe has no path: the client cannot learn the length before the end
    source: fs.createReadStream(file).pipe(new stream.PassThrough()),
    options: { uploadLengthDeferred: true, chunkSize: 1024 * 1024 },
  }),
};
const { source, options } = WAYS[mode]();
const upload = new tus.Upload(source, {
  endpoint,
  headers: { Authorization: "Basic " + Buffer.from(`apikey:${apiKey}`).toString("base64") },
  metadata: { filename: path.basename(file) },
  // a refusal is the test's to see, not to retry
  retryDelays: null,
  ...options,
  onSuccess: ({ lastResponse }) => {
    console.log(JSON.stringify({ url: upload.url, link: lastResponse.getHeader("Link") }));
  },
  onError: (error) => {
    console.error(String(error));
    process.exitCode = 1;
  },
});
upload.start();
