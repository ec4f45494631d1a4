// The operator console: one page over the platform's JSON API, with the operator's own sign-in.
// Every value is written with textContent (never as HTML); lists page with the API's `next` token.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "fdp-function-key";
const PAGE_SIZE = 20;
const labels = { datasets: new Map(), partners: new Map() };

class ProblemError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers["x-functions-key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) $("signin").hidden = false;
    throw new ProblemError(response.status, data);
  }
  return data;
}

// Small DOM helpers --------------------------------------------------------------------------------------

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function button(text, onClick, className) {
  const node = el("button", text, className);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

function when(iso) {
  return iso ? String(iso).replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, "") : "";
}

function words(status) {
  return status ? String(status).replaceAll("_", " ") : "";
}

function datasetLabel(id) {
  return labels.datasets.get(id) || id || "";
}

function showProblem(container, error) {
  let message = "The console could not reach the platform.";
  if (error instanceof ProblemError) {
    message = error.problem.title ? `${error.problem.title}: ${error.message}`
      : `This part of the platform is not available here (HTTP ${error.status}).`;
  }
  const note = el("p", message, "error");
  note.setAttribute("role", "alert");
  container.prepend(note);
}

// A row form: inputs under a row for an action that needs a reason, a risk, a reference ----------------

function rowForm(row, columns, fields, submitText, onSubmit) {
  row.parentElement.querySelectorAll("tr.row-form").forEach((other) => other.remove());
  const formRow = el("tr", null, "row-form");
  const cell = el("td");
  cell.colSpan = columns;
  const inputs = {};
  for (const field of fields) {
    const label = el("label", field.label);
    const input = field.options ? el("select") : el("input");
    if (field.options) field.options.forEach((value) => input.append(new Option(words(value), value)));
    else input.type = field.type || "text";
    input.name = field.name;
    label.append(input);
    inputs[field.name] = input;
    cell.append(label);
  }
  cell.append(button(submitText, async () => {
    const values = Object.fromEntries(Object.entries(inputs).map(([name, input]) => [name, input.value]));
    try {
      await onSubmit(values);
    } catch (error) {
      showProblem(cell, error);
    }
  }, "primary"), button("Cancel", () => formRow.remove()));
  formRow.append(cell);
  row.after(formRow);
  return formRow;
}

// A paged list: a table, its rows, and "More" while the API says there is a next page -------------------

class PagedList {
  constructor(containerId, { path, columns, actions, empty, rowClass }) {
    this.container = $(containerId);
    Object.assign(this, { path, columns, actions, empty, rowClass });
  }

  url(token) {
    const joiner = this.path().includes("?") ? "&" : "?";
    return `${this.path()}${joiner}limit=${PAGE_SIZE}${token ? `&page=${encodeURIComponent(token)}` : ""}`;
  }

  async load() {
    this.container.replaceChildren(el("p", "Loading…", "muted"));
    const table = el("table");
    const head = el("tr");
    [...this.columns.map((c) => c.title), ...(this.actions ? [""] : [])].forEach((t) => head.append(el("th", t)));
    table.append(el("thead"), el("tbody"));
    table.tHead.append(head);
    this.table = table;
    try {
      const page = await api("GET", this.url());
      this.container.replaceChildren(table);
      this.append(page);
    } catch (error) {
      this.container.replaceChildren();
      showProblem(this.container, error);
    }
  }

  append(page) {
    const body = this.table.tBodies[0];
    for (const item of page.items) body.append(this.row(item));
    this.container.querySelector(".more")?.remove();
    if (!body.rows.length) this.container.replaceChildren(el("p", this.empty, "muted"));
    if (page.next) {
      this.container.append(button("More", async () => this.append(await api("GET", this.url(page.next))), "more"));
    }
  }

  row(item) {
    const row = el("tr");
    row.dataset.id = item.id || item.ingest_id || "";
    if (this.rowClass) row.className = this.rowClass(item);
    for (const column of this.columns) {
      const cell = el("td");
      const value = column.value(item);
      if (value instanceof Node) cell.append(value); else cell.textContent = value ?? "";
      row.append(cell);
    }
    if (this.actions) {
      const cell = el("td", null, "actions");
      this.actions(item, row).forEach((action) => cell.append(action));
      row.append(cell);
    }
    return row;
  }
}

// Rights requests -----------------------------------------------------------------------------------------

function deadline(item) {
  if (item.days_left === undefined) return `due ${item.due}`;
  if (item.days_left < 0) return `overdue by ${-item.days_left} day${item.days_left === -1 ? "" : "s"}`;
  return `${item.days_left} day${item.days_left === 1 ? "" : "s"} left`;
}

const requests = new PagedList("requests", {
  path: () => `requests?status=${$("requests-status").value}`,
  empty: "No requests.",
  rowClass: (item) => (item.days_left < 0 ? "overdue" : ""),
  columns: [
    { title: "Type", value: (r) => r.type },
    { title: "Status", value: (r) => words(r.status) },
    { title: "Received", value: (r) => r.received },
    { title: "Due", value: (r) => r.due },
    { title: "Deadline", value: (r) => deadline(r) },
    { title: "Identified by", value: (r) => (r.identifiers || []).join(", ") },
  ],
  actions: (r, row) => {
    const actions = [];
    if (r.status !== "completed" && !r.extended) {
      actions.push(button("Extend", () => rowForm(row, 7, [{ name: "reason", label: "Reason" }], "Extend",
        async ({ reason }) => { await api("POST", `requests/${r.id}/extend`, { reason }); requests.load(); })));
    }
    if (r.status === "awaiting_decision") {
      actions.push(button("Decide", () => rowForm(row, 7, [
        { name: "outcome", label: "Outcome", options: ["upheld", "refused"] }, { name: "reasons", label: "Reasons" }],
      "Record decision", async (values) => { await api("POST", `requests/${r.id}/decide`, values); requests.load(); })));
    }
    return actions;
  },
});

// Identity review queue -----------------------------------------------------------------------------------

function agreement(pattern) {
  const list = el("ul", null, "agreement");
  for (const [field, how] of Object.entries(pattern || {})) list.append(el("li", `${words(field)}: ${how}`));
  return list;
}

const reviews = new PagedList("reviews", {
  path: () => "identity/reviews?status=pending",
  empty: "Nothing to review.",
  columns: [
    { title: "Kind", value: (p) => p.kind },
    { title: "Why", value: (p) => p.reason },
    { title: "Score", value: (p) => (p.probability === null || p.probability === undefined
      ? "" : Number(p.probability).toFixed(3)) },
    { title: "How the two records agree", value: (p) => agreement(p.agreement) },
  ],
  actions: (p) => ["accept", "reject"].map((decision) => button(decision === "accept" ? "Same person" : "Different people",
    async (event) => {
      event.target.disabled = true;
      try {
        await api("POST", `identity/reviews/${p.id}`, { decision });
        reviews.load();
      } catch (error) {
        showProblem($("reviews"), error);
      }
    }, decision)),
});

// Breaches (the breach register's API) ---------------------------------------------------------------------

function hoursLeft(b) {
  if (b.overdue) return "ICO deadline passed";
  if (b.hours_left === null || b.hours_left === undefined) return "";
  return `${b.hours_left} h to tell the ICO`;
}

const breaches = new PagedList("breaches", {
  path: () => `breaches?status=${$("breaches-status").value}`,
  empty: "No breaches.",
  rowClass: (b) => (b.overdue ? "overdue" : ""),
  columns: [
    { title: "Category", value: (b) => words(b.category) },
    { title: "Status", value: (b) => b.status },
    { title: "Aware", value: (b) => when(b.aware_at) },
    { title: "ICO deadline", value: (b) => when(b.ico_deadline) },
    { title: "Clock", value: (b) => hoursLeft(b) },
    { title: "Risk", value: (b) => words(b.risk) || "not assessed" },
  ],
  actions: (b, row) => (b.status !== "open" ? [] : [
    button("Assess", () => rowForm(row, 7, [
      { name: "risk", label: "Risk to people", options: ["unlikely", "risk", "high"] },
      { name: "reason", label: "Reason" }], "Record assessment",
    async (values) => { await api("POST", `breaches/${b.id}/assess`, values); breaches.load(); })),
    button("ICO notified", () => rowForm(row, 7, [{ name: "reference", label: "ICO reference" },
      ...(b.overdue ? [{ name: "delay_reason", label: "Why it was late" }] : [])], "Record",
    async (values) => { await api("POST", `breaches/${b.id}/ico-notified`, values); breaches.load(); })),
    button("People told", () => rowForm(row, 7, [
      { name: "how", label: "How", options: ["via_partners", "direct", "public_communication"] }], "Record",
    async (values) => { await api("POST", `breaches/${b.id}/people-notified`, values); breaches.load(); })),
    button("Close", () => rowForm(row, 7, [{ name: "outcome", label: "Outcome" }], "Close breach",
      async (values) => { await api("POST", `breaches/${b.id}/close`, values); breaches.load(); })),
  ]),
});

async function openBreach(event) {
  event.preventDefault();
  try {
    await api("POST", "breaches", { category: $("breach-category").value,
      description: $("breach-description").value });
    $("breach-description").value = "";
    breaches.load();
  } catch (error) {
    showProblem($("breach-form"), error);
  }
}

// Uploads ---------------------------------------------------------------------------------------------------

function receiptDetail(upload) {
  const receipt = upload.receipt;
  if (!receipt) return el("span", "no receipt yet", "muted");
  const details = el("details");
  details.append(el("summary", receipt.message || words(receipt.status)));
  const problems = [...(receipt.rejection || []), ...(receipt.errors || [])];
  if (problems.length) {
    const table = el("table", null, "receipt-errors");
    const head = el("tr");
    ["Row", "Column", "Rule", "What to fix"].forEach((t) => head.append(el("th", t)));
    table.append(head);
    for (const p of problems) {
      const row = el("tr");
      [p.row, p.column, p.rule, p.message].forEach((v) => row.append(el("td", v)));
      table.append(row);
    }
    details.append(table);
  }
  return details;
}

const uploads = new PagedList("uploads", {
  path: () => "uploads",
  empty: "No uploads yet.",
  columns: [
    { title: "Received", value: (u) => when(u.received_at) },
    { title: "Partner", value: (u) => u.partner_name },
    { title: "Dataset", value: (u) => u.dataset },
    { title: "File", value: (u) => u.file },
    { title: "Status", value: (u) => el("span", words(u.status), `status-${u.status}`) },
    { title: "Rows stored", value: (u) => (u.rows ? `${u.rows.stored} of ${u.rows.read}` : "") },
    { title: "Receipt", value: (u) => receiptDetail(u) },
  ],
});

// Partners and their links ------------------------------------------------------------------------------------

function liveLinks(p) {
  if (!p.onboarded) return "not onboarded";
  if (!p.links.issued) return "no live links";
  return `${p.links.issued} issued, live until ${when(p.links.live_until)}`;
}

function showIssued(partner, link) {
  $("issued-partner").textContent = partner.name;
  $("issued-expires").textContent = when(link.expires);
  $("issued-link").value = link.upload_page;
  $("copied").textContent = "";
  $("issued").hidden = false;
  $("issued-link").select();
}

async function copyIssued() {
  const input = $("issued-link");
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    document.execCommand("copy");  // a browser without the clipboard API, or without permission
  }
  $("copied").textContent = "Copied.";
}

const partners = new PagedList("partners", {
  path: () => "partners",
  empty: "The policy names no partners.",
  columns: [
    { title: "Partner", value: (p) => p.name },
    { title: "Kind", value: (p) => words(p.kind) },
    { title: "Datasets", value: (p) => p.datasets.map((d) => d.id).join(", ") },
    { title: "Links", value: (p) => liveLinks(p) },
  ],
  actions: (p, row) => {
    if (!p.onboarded) {
      return [button("Onboard", async () => { await api("PUT", `partners/${p.id}`); partners.load(); })];
    }
    return [
      button("Issue link", () => rowForm(row, 5, [{ name: "expiry_days", label: "Valid for (days)", type: "number" }],
        "Issue", async ({ expiry_days: days }) => {
          const link = await api("POST", `partners/${p.id}/links`, days ? { expiry_days: Number(days) } : {});
          showIssued(p, link);
          partners.load();
        })),
      button("Revoke links", () => rowForm(row, 5, [], `Revoke every link of ${p.name}`, async () => {
        await api("DELETE", `partners/${p.id}/links`);
        $("issued").hidden = true;
        partners.load();
      }), "revoke"),
    ];
  },
});

async function loadLabels() {
  const select = $("hold-dataset");
  let token = null;
  do {
    const page = await api("GET", `partners?limit=200${token ? `&page=${encodeURIComponent(token)}` : ""}`);
    for (const partner of page.items) {
      labels.partners.set(partner.id, partner.name);
      for (const dataset of partner.datasets) {
        labels.datasets.set(dataset.id, `${dataset.id} (${partner.name})`);
        select.append(new Option(labels.datasets.get(dataset.id), dataset.id));
      }
    }
    token = page.next;
  } while (token);
}

// Holds and the retention preview -------------------------------------------------------------------------

const holds = new PagedList("holds", {
  path: () => "retention/holds",
  empty: "No holds.",
  rowClass: (h) => (h.active ? "" : "lifted"),
  columns: [
    { title: "Holds", value: (h) => (h.scope === "dataset" ? datasetLabel(h.dataset) : "one person") },
    { title: "Reason", value: (h) => h.reason },
    { title: "Set", value: (h) => when(h.set_at) },
    { title: "State", value: (h) => (h.active ? "active" : `lifted ${when(h.lifted_at)}`) },
  ],
  actions: (h, row) => (!h.active ? [] : [button("Lift", () => rowForm(row, 5, [{ name: "reason", label: "Reason" }],
    "Lift hold", async ({ reason }) => { await api("DELETE", `retention/holds/${h.id}`, { reason }); holds.load(); }))]),
});

async function setHold(event) {
  event.preventDefault();
  try {
    await api("POST", "retention/holds", { dataset: $("hold-dataset").value, reason: $("hold-reason").value });
    $("hold-reason").value = "";
    holds.load();
  } catch (error) {
    showProblem($("hold-form"), error);
  }
}

function previewTable(title, rows, columns) {
  const section = el("div");
  section.append(el("h3", title));
  if (!rows.length) { section.append(el("p", "Nothing.", "muted")); return section; }
  const table = el("table");
  const head = el("tr");
  columns.forEach(([heading]) => head.append(el("th", heading)));
  table.append(head);
  for (const item of rows) {
    const row = el("tr");
    columns.forEach(([, value]) => row.append(el("td", value(item))));
    table.append(row);
  }
  section.append(table);
  return section;
}

async function previewRetention() {
  const target = $("retention");
  try {
    const preview = await api("POST", "retention/preview", $("retention-date").value
      ? { date: $("retention-date").value } : {});
    const month = [["Dataset", (r) => datasetLabel(r.dataset)], ["Purge month", (r) => r.purge_month],
      ["Rows", (r) => r.rows]];
    target.replaceChildren(
      el("p", `A run on ${preview.date} would delete ${preview.delete.reduce((n, r) => n + r.rows, 0)} rows and `
        + `${preview.exports_expired} expired exports.`),
      previewTable("Deleted", preview.delete, month),
      previewTable("Kept for a hold", preview.held, month),
      previewTable("Re-planned", preview.replan, [["Dataset", (r) => datasetLabel(r.dataset)],
        ["From", (r) => r.from_month], ["To", (r) => (r.to_months || []).join(", ")], ["Rows", (r) => r.rows]]));
  } catch (error) {
    target.replaceChildren();
    showProblem(target, error);
  }
}

// Reports and extracts ------------------------------------------------------------------------------------

const reports = new PagedList("reports", {
  path: () => "reports",
  empty: "No report has been run yet.",
  columns: [
    { title: "Report", value: (r) => r.report },
    { title: "For", value: (r) => r.audience },
    { title: "Date", value: (r) => r.date },
    { title: "Status", value: (r) => el("span", r.status, `status-${r.status}`) },
  ],
});

const extracts = new PagedList("extracts", {
  path: () => "extracts",
  empty: "No research extract is kept.",
  columns: [
    { title: "Extract", value: (x) => x.extract },
    { title: "Recipient", value: (x) => x.recipient },
    { title: "Made", value: (x) => when(x.created_at) },
    { title: "Rows", value: (x) => x.rows },
    { title: "Agreement expires", value: (x) => x.expires },
  ],
});

// Start ----------------------------------------------------------------------------------------------------------

function loadAll() {
  $("signin").hidden = true;
  loadLabels().catch(() => {}).finally(() => {
    [requests, reviews, breaches, uploads, partners, holds, reports, extracts].forEach((list) => list.load());
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("function-key").value = sessionStorage.getItem(KEY) || "";
  $("save-key").addEventListener("click", () => { sessionStorage.setItem(KEY, $("function-key").value.trim()); loadAll(); });
  $("requests-status").addEventListener("change", () => requests.load());
  $("breaches-status").addEventListener("change", () => breaches.load());
  $("breach-form").addEventListener("submit", openBreach);
  $("hold-form").addEventListener("submit", setHold);
  $("retention-preview").addEventListener("click", previewRetention);
  $("copy-link").addEventListener("click", copyIssued);
  loadAll();
});
