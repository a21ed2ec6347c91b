// Builds the page with DOM nodes only: every value becomes a text node or an
// attribute, never HTML, so nothing a konnector or a vendor wrote can run here.

/** h('p', { class: 'x' }, 'text', child...): attributes set with setAttribute, `on*` as listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces an element's content, leaving out the children a condition made null, undefined or false. */
export function fill(element, ...children) {
  element.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
}

/** Replaces the content of `main` and moves the focus there, so keyboard and screen-reader users follow. */
export function show(title, ...children) {
  const main = document.getElementById('main');
  fill(main, h('h1', {}, title), ...children);
  document.title = `${title} - My Accounts`;
  main.focus();
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.issues = body?.error?.issues ?? [];
  }
}

let csrf = null;
export const setCsrf = (token) => { csrf = token; };

/** The web app's API: same origin, the session cookie, and the CSRF token on every change. */
export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  const res = await fetch(`/app/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const text = await res.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, parsed);
  return parsed;
}

/** A message box; `role=alert` makes screen readers say it at once. */
export function notice(text, kind = 'info') {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** A labelled form field; `input` attributes go to the control. */
export function field(id, label, input, hint) {
  const control = input.tag === 'select'
    ? h('select', { id, name: input.name ?? id, required: input.required }, ...input.options.map((o) => h('option', { value: o.value, selected: o.selected }, o.label)))
    : h('input', { id, name: input.name ?? id, ...input.attributes });
  return h('div', { class: 'field' }, h('label', { for: id }, label), hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null, control);
}

export const formatDate = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
export const formatBytes = (n) => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
