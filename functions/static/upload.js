// The partner upload page: check the link, upload the file in blocks straight to Blob storage, show the receipt.
"use strict";

const BLOCK_SIZE = 4 * 1024 * 1024;
const $ = (id) => document.getElementById(id);
let link = "";

function linkFromFragment() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  return fragment.get("link") || "";
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  return { status: response.status, data };
}

async function checkLink() {
  link = $("link").value.trim();
  $("link-error").hidden = true;
  const { status, data } = await post("upload/check", { link });
  if (status !== 200) {
    $("link-error").textContent = data.detail || "This link cannot be used.";
    $("link-error").hidden = false;
    return;
  }
  $("partner-name").textContent = data.name;
  const select = $("dataset");
  select.replaceChildren(...data.datasets.map((dataset) => new Option(dataset.label, dataset.name)));
  $("link-step").hidden = true;
  $("file-step").hidden = false;
}

function blobUrl(name, query) {
  const [base, sas] = link.split("?");
  return `${base}/${name.split("/").map(encodeURIComponent).join("/")}?${sas}${query}`;
}

function blockId(index) {
  return btoa(String(index).padStart(6, "0"));
}

async function upload() {
  const file = $("file").files[0];
  if (!file) { $("status").textContent = "Choose a file first."; return; }
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  const name = `${$("dataset").value}/${stamp}-${file.name}`;
  const blocks = Math.max(1, Math.ceil(file.size / BLOCK_SIZE));
  $("upload").disabled = true;
  $("progress").hidden = false;
  $("status").textContent = "Uploading ...";
  const ids = [];
  for (let index = 0; index < blocks; index += 1) {
    const id = blockId(index);
    const chunk = file.slice(index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE);
    const put = await fetch(blobUrl(name, `&comp=block&blockid=${encodeURIComponent(id)}`), {
      method: "PUT", body: chunk,
    });
    if (!put.ok) { return failed(put.status); }
    ids.push(id);
    $("progress").value = Math.round(((index + 1) / blocks) * 100);
  }
  const list = `<?xml version="1.0" encoding="utf-8"?><BlockList>${ids.map((id) => `<Latest>${id}</Latest>`).join("")}</BlockList>`;
  const commit = await fetch(blobUrl(name, "&comp=blocklist"), {
    method: "PUT", body: list, headers: { "x-ms-blob-content-type": file.type || "application/octet-stream" },
  });
  if (!commit.ok) { return failed(commit.status); }
  $("status").textContent = "Uploaded. Checking the file ...";
  pollReceipt(name, commit.headers.get("etag") || "");
}

function failed(status) {
  $("upload").disabled = false;
  $("status").textContent = status === 403
    ? "The upload was refused: the link may have expired or been revoked, or a file of this name exists."
    : `The upload failed (HTTP ${status}). Please try again.`;
}

async function pollReceipt(blob, etag) {
  for (let attempt = 0; attempt < 150; attempt += 1) {
    const { status, data } = await post("upload/receipt", { link, blob, etag });
    if (status === 200) { return showReceipt(data); }
    if (status !== 202) { $("status").textContent = data.detail || "The receipt is not available."; return; }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  $("status").textContent = "Still checking: your programme's administrator can see the receipt.";
}

function showReceipt(receipt) {
  $("status").textContent = "";
  $("receipt").hidden = false;
  $("receipt-status").textContent = receipt.status.replace(/_/g, " ");
  $("receipt-status").className = receipt.status === "rejected" ? "rejected" : "accepted";
  $("receipt-message").textContent = receipt.message;
  const problems = (receipt.rejection || []).concat(receipt.errors || []);
  const body = $("receipt-errors").querySelector("tbody");
  body.replaceChildren(...problems.map((p) => {
    const row = document.createElement("tr");
    for (const value of [p.row ?? "", p.column ?? "", p.rule, p.message]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.appendChild(cell);
    }
    return row;
  }));
  $("receipt-errors").hidden = problems.length === 0;
}

document.addEventListener("DOMContentLoaded", () => {
  $("check").addEventListener("click", checkLink);
  $("upload").addEventListener("click", upload);
  const fromFragment = linkFromFragment();
  if (fromFragment) {
    $("link").value = fromFragment;
    history.replaceState(null, "", window.location.pathname);  // the link leaves the address bar
    checkLink();
  }
});
