// Brings the pinned Azurite up to a documented service behaviour it does not implement yet.
//
// Since REST version 2026-04-06, a SAS with create (c) permission may stage and commit blocks (Put Block,
// Put Block List) for a new blob, and committing over an existing blob still needs write (w). That is what lets
// a partner's create-only upload link send a large file in blocks and never overwrite anything. Azurite 3.35
// (the last release for Node 20) still asks for write on those operations. This script, run by `npm ci`
// (postinstall), makes Azurite apply the documented rule; it changes nothing else, and refuses to run against
// a version whose code it does not recognise.
"use strict";
const fs = require("fs");
const path = require("path");

const auth = path.join(__dirname, "..", "node_modules", "azurite", "dist", "src", "blob", "authentication");
const write = "BlobSASPermissions_1.BlobSASPermission.Write";
const writeOrCreate = `${write} + BlobSASPermissions_1.BlobSASPermission.Create`;

function patch(file, edits) {
  const target = path.join(auth, file);
  let text = fs.readFileSync(target, "utf8");
  for (const [before, after] of edits) {
    if (text.includes(after)) continue; // already applied
    if (!text.includes(before)) throw new Error(`${file}: unrecognised Azurite code; update ${__filename}`);
    text = text.split(before).join(after);
  }
  fs.writeFileSync(target, text);
}

const blockOps = ["BlockBlob_StageBlock", "BlockBlob_CommitBlockList"];
patch("OperationBlobSASPermission.js", blockOps.flatMap((op) => ["BLOB", "CONTAINER"].map((scope) => [
  `OPERATION_BLOB_SAS_${scope}_PERMISSIONS.set(operation_1.default.${op}, new OperationBlobSASPermission(${write}));`,
  `OPERATION_BLOB_SAS_${scope}_PERMISSIONS.set(operation_1.default.${op}, new OperationBlobSASPermission(${writeOrCreate}));`,
])));
patch("BlobSASAuthenticator.js", [[
  "if (operation === operation_1.default.BlockBlob_Upload ||\n",
  "if (operation === operation_1.default.BlockBlob_Upload ||\n            operation === operation_1.default.BlockBlob_CommitBlockList ||\n",
]]);
console.log("azurite: create (c) SAS may stage and commit blocks for new blobs (REST 2026-04-06 behaviour)");
