// My Accounts: the pages, one per address after the "#" (docs/my-accounts.md).
import { api, ApiError, field, fill, formatBytes, formatDate, h, notice, setCsrf, show } from './dom.js';

let me = null;

const STATE_WORDS = { queued: 'Waiting to start', running: 'Running', done: 'Done', errored: 'Failed' };
const SCHEDULE_WORDS = { daily: 'Every day', weekly: 'Every week', paused: 'Paused', none: 'Not scheduled' };
/** io.cozy.bills -> bills */
const doctypeWords = (doctype) => doctype.replace(/^io\.cozy\./, '').replace(/\./g, ' ');
const savedWords = (saved) => {
  const parts = Object.entries(saved ?? {}).map(([doctype, count]) => `${count} ${doctypeWords(doctype)}`);
  return parts.length ? parts.join(', ') : 'nothing new';
};

function failure(error) {
  if (error instanceof ApiError && error.status === 401 && me) {
    me = null;
    renderNav();
    location.hash = '#/';
  }
  const issues = error instanceof ApiError && error.issues.length ? h('ul', {}, error.issues.map((issue) => h('li', {}, issue))) : null;
  return h('div', {}, notice(error.message, 'error'), issues);
}

/** Runs `action` on submit, with the button disabled meanwhile and the error shown above the form. */
function onSubmit(form, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    form.querySelector('.form-error')?.remove();
    try {
      await action(new FormData(form));
    } catch (error) {
      form.prepend(h('div', { class: 'form-error' }, failure(error)));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** A button that runs `action`, disabled meanwhile, its error shown next to it. */
function actionButton(label, action, className) {
  const button = h('button', { type: 'button', class: className, onclick: async () => {
    button.disabled = true;
    if (button.nextElementSibling?.classList.contains('action-error')) button.nextElementSibling.remove();
    try {
      await action();
    } catch (error) {
      button.after(h('div', { class: 'action-error' }, failure(error)));
    } finally {
      button.disabled = false;
    }
  } }, label);
  return button;
}

function renderNav() {
  const nav = document.getElementById('nav');
  if (!me?.principal) return nav.replaceChildren();
  const who = me.principal.kind === 'operator' ? 'Operator' : me.principal.instance;
  const signOut = actionButton('Sign out', async () => {
    await api('DELETE', '/session');
    me = null;
    setCsrf(null);
    renderNav();
    go('#/');
  }, 'link');
  fill(nav, h('a', { href: '#/' }, 'Accounts'), h('a', { href: '#/catalog' }, 'Connect an account'),
    me.principal.kind === 'operator' ? h('a', { href: '#/owners' }, 'Owners') : null, h('span', { class: 'who' }, who), signOut);
}

function signedIn(answer) {
  me = answer;
  setCsrf(answer.csrf);
  renderNav();
}

// Sign-in

function signInView(message) {
  const emailForm = onSubmit(h('form', { novalidate: true },
    field('email', 'Your e-mail address', { attributes: { type: 'email', autocomplete: 'email', required: true } }),
    h('button', { type: 'submit' }, 'Send me a sign-in link')), async (data) => {
    const answer = await api('POST', '/session/email', { email: data.get('email') });
    emailForm.replaceWith(notice(answer.message));
  });
  const tokenForm = onSubmit(h('form', {},
    field('token', 'API token', { attributes: { type: 'password', autocomplete: 'current-password', required: true } },
      'The token konnector serve was started with ($KONNECTOR_SERVE_TOKEN or <data-dir>/token).'),
    h('button', { type: 'submit' }, 'Sign in as the operator')), async (data) => {
    signedIn(await api('POST', '/session/token', { token: data.get('token') }));
    go('#/');
  });
  show('Sign in',
    message ?? null,
    h('section', { 'aria-labelledby': 'owner-title' }, h('h2', { id: 'owner-title' }, 'Owner of a Cozy'), emailForm),
    h('details', {}, h('summary', {}, 'Operator of this host'), tokenForm));
}

function secondStepView() {
  show('Second step',
    h('p', {}, 'Your Cozy asks for a second factor: type the code your authenticator app shows.'),
    onSubmit(h('form', {},
      field('code', 'Six-digit code', { attributes: { type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', required: true } }),
      h('button', { type: 'submit' }, 'Sign in')), async (data) => {
      signedIn(await api('POST', '/session/totp', { code: data.get('code') }));
      go('#/');
    }));
}

async function useLink(token) {
  try {
    const answer = await api('POST', '/session/link', { token });
    if (answer.secondStep) return secondStepView();
    signedIn(answer);
    return go('#/');
  } catch (error) {
    return signInView(failure(error));
  }
}

// Accounts

function runSummary(job) {
  if (!job) return 'Never run';
  const when = formatDate(job.finishedAt ?? job.startedAt ?? job.queuedAt);
  if (job.state === 'errored') return `${STATE_WORDS.errored} (${when}): ${job.explanation?.happened ?? job.error}`;
  if (job.state === 'done') return `${STATE_WORDS.done} (${when}): ${savedWords(job.report?.saved)} saved`;
  return `${STATE_WORDS[job.state]} (${when})`;
}

async function accountsView(render) {
  const { accounts } = await api('GET', '/accounts');
  const items = accounts.map((account) => h('li', { class: 'card' },
    h('h2', {}, h('a', { href: `#/accounts/${encodeURIComponent(account.id)}` }, account.label || account.konnectorName)),
    h('p', {}, account.konnectorName, account.fields.login ? ` · ${account.fields.login}` : '', me.principal.kind === 'operator' ? ` · ${account.instance}` : ''),
    h('p', { class: `state ${account.lastRun?.state ?? 'never'}` }, runSummary(account.lastRun)),
    h('p', { class: 'hint' }, SCHEDULE_WORDS[account.schedule] ?? account.schedule)));
  render('Your accounts',
    items.length ? h('ul', { class: 'cards' }, items) : h('p', {}, 'No account yet.'),
    h('p', {}, h('a', { class: 'button', href: '#/catalog' }, 'Connect an account')));
}

function monogram(name) {
  return h('span', { class: 'icon', 'aria-hidden': 'true' }, name.slice(0, 1).toUpperCase());
}

async function catalogView(render) {
  const { konnectors } = await api('GET', '/catalog');
  render('Connect an account', h('ul', { class: 'cards' }, konnectors.map((k) => h('li', { class: 'card' },
    h('h2', {}, monogram(k.name), k.name),
    h('p', {}, k.description),
    h('dl', {},
      h('dt', {}, 'Reaches'), h('dd', {}, k.hosts.join(', ') || 'any public website'),
      h('dt', {}, 'Saves'), h('dd', {}, k.doctypes.map(doctypeWords).join(', ') || 'nothing'),
      k.folder ? [h('dt', {}, 'In the folder'), h('dd', {}, k.folder)] : null),
    h('a', { class: 'button', href: `#/connect/${encodeURIComponent(k.slug)}`, 'aria-label': `Connect ${k.name}` }, 'Connect')))));
}

function credentialFields(konnector, values, editing) {
  return konnector.fields.map((f) => {
    const id = `field-${f.name}`;
    if (f.type === 'select') {
      return field(id, f.label, { tag: 'select', name: `fields.${f.name}`, required: f.required,
        options: f.options.map((o) => ({ ...o, selected: values[f.name] === o.value })) });
    }
    const keep = editing && f.type === 'password';
    return field(id, f.label, { name: `fields.${f.name}`, attributes: {
      type: f.type, required: f.required && !keep, value: f.type === 'password' ? null : values[f.name],
      autocomplete: f.type === 'password' ? 'new-password' : 'off' } },
    keep ? 'Leave it empty to keep the one saved.' : null);
  });
}

const fieldsOf = (data) => Object.fromEntries([...data.entries()].filter(([name]) => name.startsWith('fields.')).map(([name, v]) => [name.slice(7), v]));

function scheduleField(selected, withPause) {
  const options = [{ value: 'daily', label: 'Every day' }, { value: 'weekly', label: 'Every week' }, ...(withPause ? [{ value: 'paused', label: 'Paused' }] : [])];
  return field('frequency', 'Runs', { tag: 'select', options: options.map((o) => ({ ...o, selected: o.value === selected })) });
}

async function connectView(render, slug) {
  const { konnectors } = await api('GET', '/catalog');
  const konnector = konnectors.find((k) => k.slug === slug);
  if (!konnector) return render('Not found', notice('This host has no such konnector.', 'error'));
  const form = onSubmit(h('form', {},
    h('p', {}, `Your login for ${konnector.name}. It is kept on this host and sent to ${konnector.hosts.join(', ') || 'the vendor'} only; the password is never shown again.`),
    credentialFields(konnector, {}, false),
    me.principal.kind === 'operator' ? field('instance', 'Cozy instance', { attributes: { type: 'text', required: true, placeholder: 'alice.cozy.example' } }) : null,
    field('label', 'Name of this account (optional)', { attributes: { type: 'text', maxlength: 200 } }),
    scheduleField(konnector.frequency, false),
    h('button', { type: 'submit' }, 'Connect and run now')), async (data) => {
    const answer = await api('POST', '/accounts', {
      konnector: slug, fields: fieldsOf(data), frequency: data.get('frequency'),
      ...(data.get('label') ? { label: data.get('label') } : {}), ...(data.get('instance') ? { instance: data.get('instance') } : {}),
    });
    location.hash = `#/jobs/${encodeURIComponent(answer.job.id)}`;
  });
  render(`Connect ${konnector.name}`, form);
}

async function accountView(render, id) {
  const [account, { konnectors }] = await Promise.all([api('GET', `/accounts/${encodeURIComponent(id)}`), api('GET', '/catalog')]);
  const konnector = konnectors.find((k) => k.slug === account.konnector);
  const runNow = actionButton('Run now', async () => {
    const job = await api('POST', `/accounts/${encodeURIComponent(id)}/run`);
    location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
  });
  const schedule = onSubmit(h('form', { class: 'inline' }, scheduleField(account.schedule, true), h('button', { type: 'submit' }, 'Save the schedule')),
    async (data) => {
      const answer = await api('PUT', `/accounts/${encodeURIComponent(id)}/schedule`, { frequency: data.get('frequency') });
      schedule.querySelector('.notice')?.remove();
      schedule.append(notice(`Schedule: ${SCHEDULE_WORDS[answer.schedule] ?? answer.schedule}.`));
    });
  const edit = konnector ? onSubmit(h('form', {},
    credentialFields(konnector, account.fields, true),
    field('label', 'Name of this account', { attributes: { type: 'text', maxlength: 200, value: account.label } }),
    h('button', { type: 'submit' }, 'Save and run')), async (data) => {
    await api('PUT', `/accounts/${encodeURIComponent(id)}`, { fields: fieldsOf(data), label: data.get('label') });
    const job = await api('POST', `/accounts/${encodeURIComponent(id)}/run`);
    location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
  }) : notice('This host does not have the konnector any more.', 'error');
  const remove = h('button', { type: 'button', class: 'danger', onclick: () => {
    remove.replaceWith(h('p', {}, 'The account and its schedule go; the documents it saved stay in your Cozy. ',
      actionButton('Yes, delete it', async () => {
        await api('DELETE', `/accounts/${encodeURIComponent(id)}`);
        location.hash = '#/';
      }, 'danger')));
  } }, 'Delete this account');
  const history = h('table', {}, h('caption', {}, 'Last runs'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Started'), h('th', { scope: 'col' }, 'Outcome'), h('th', { scope: 'col' }, 'Saved'))),
    h('tbody', {}, account.history.map((job) => h('tr', {},
      h('td', {}, h('a', { href: `#/jobs/${encodeURIComponent(job.id)}` }, formatDate(job.startedAt ?? job.queuedAt))),
      h('td', { class: `state ${job.state}` }, job.state === 'errored' ? `${STATE_WORDS.errored}: ${job.explanation?.happened ?? job.error}` : STATE_WORDS[job.state]),
      h('td', {}, job.report ? savedWords(job.report.saved) : '—')))));
  render(account.label || account.konnectorName,
    h('p', {}, `${account.konnectorName}${me.principal.kind === 'operator' ? ` · ${account.instance}` : ''}`),
    h('p', { class: `state ${account.lastRun?.state ?? 'never'}` }, runSummary(account.lastRun)),
    account.lastRun?.explanation ? h('p', { class: 'todo' }, account.lastRun.explanation.todo) : null,
    h('div', { class: 'actions' }, runNow), schedule,
    h('h2', {}, 'Login'), edit,
    account.history.length ? history : h('p', {}, 'No run yet.'),
    h('h2', {}, 'Delete'), remove);
}

// The operator's records of who owns each instance

async function ownersView(render) {
  const { instances } = await api('GET', '/instances');
  const result = h('div', {});
  const form = onSubmit(h('form', {},
    field('owner-instance', 'Cozy instance', { name: 'instance', attributes: { type: 'text', required: true, placeholder: 'alice.cozy.example' } }),
    field('owner-email', 'Owner\'s e-mail address', { name: 'email', attributes: { type: 'email', required: true } }),
    h('div', { class: 'check' }, h('input', { type: 'checkbox', id: 'owner-2fa', name: 'twoFactor' }),
      h('label', { for: 'owner-2fa' }, 'Two-factor sign-in (a code from an authenticator app)')),
    h('button', { type: 'submit' }, 'Save')), async (data) => {
    const saved = await api('PUT', `/instances/${encodeURIComponent(data.get('instance'))}`,
      { email: data.get('email'), twoFactor: data.get('twoFactor') === 'on' });
    result.replaceChildren(notice(`Saved: ${saved.instance} belongs to ${saved.email}.`),
      saved.totpUri ? h('div', {}, h('p', {}, 'Give the owner this key for their authenticator app; it is shown only now:'),
        h('p', { class: 'secret' }, saved.totpUri)) : null);
  });
  render('Owners',
    h('p', {}, 'An instance\'s owner signs in with this e-mail address, and sees only the accounts of their instance.'),
    instances.length ? h('table', {}, h('caption', {}, 'Instances'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Instance'), h('th', { scope: 'col' }, 'Owner'), h('th', { scope: 'col' }, 'Two-factor'))),
      h('tbody', {}, instances.map((i) => h('tr', {}, h('td', {}, i.instance), h('td', {}, i.email), h('td', {}, i.twoFactor ? 'On' : 'Off'))))) : null,
    h('h2', {}, 'Add or change an owner'), result, form);
}

// A run, live

function budgetWords(usage, format = String) {
  return usage ? `${format(usage.used)} of ${format(usage.limit)}` : '—';
}

function reportOf(job) {
  const parts = [];
  if (job.explanation) {
    parts.push(h('div', { class: 'explanation', role: 'alert' },
      h('h2', {}, job.explanation.happened), h('p', {}, job.explanation.todo),
      job.error?.startsWith('LOGIN_FAILED') || job.error?.startsWith('USER_ACTION_NEEDED')
        ? h('p', {}, h('a', { class: 'button', href: `#/accounts/${encodeURIComponent(job.account)}` }, 'Update the login of this account'))
        : null,
      h('p', { class: 'hint' }, `Code: ${job.error}`)));
  }
  const r = job.report;
  if (r) {
    parts.push(h('h2', {}, 'Report'), h('dl', { class: 'report' },
      h('dt', {}, 'Saved'), h('dd', { 'data-saved': '' }, savedWords(r.saved)),
      h('dt', {}, 'Requests to the vendor'), h('dd', {}, String(r.requests)),
      h('dt', {}, 'Duration'), h('dd', {}, `${(r.durationMs / 1000).toFixed(1)} s (limit ${(r.wallClock.limit / 1000).toFixed(0)} s)`),
      h('dt', {}, 'Computing (fuel)'), h('dd', {}, r.fuel ? budgetWords(r.fuel, (n) => n.toLocaleString()) : 'not metered'),
      h('dt', {}, 'Memory'), h('dd', {}, budgetWords(r.memory, formatBytes)),
      h('dt', {}, 'Documents'), h('dd', {}, budgetWords(r.documents)),
      h('dt', {}, 'Files'), h('dd', {}, budgetWords(r.files))));
  }
  return parts;
}

let following = null;

function jobView(render, id) {
  const state = h('p', { class: 'state', role: 'status', 'aria-live': 'polite' }, 'Connecting…');
  const log = h('ol', { class: 'log', 'aria-label': 'Log of the run' });
  const report = h('div', {});
  const back = h('p', {});
  render('Run', state, back, h('h2', {}, 'Log'), log, report);
  following = new EventSource(`/app/api/jobs/${encodeURIComponent(id)}/events`);
  const source = following;
  source.addEventListener('log', (event) => {
    const line = JSON.parse(event.data);
    log.append(h('li', { class: `level-${line.level}` }, h('span', { class: 'level' }, line.level), ' ', line.message));
  });
  source.addEventListener('job', (event) => {
    const job = JSON.parse(event.data);
    state.className = `state ${job.state}`;
    state.textContent = `${STATE_WORDS[job.state]}${job.maxAttempts > 1 && job.attempts > 1 ? ` (attempt ${job.attempts} of ${job.maxAttempts})` : ''}`;
    back.replaceChildren(h('a', { href: `#/accounts/${encodeURIComponent(job.account)}` }, 'The account'));
    if (job.state === 'done' || job.state === 'errored') {
      source.close();
      report.replaceChildren(...reportOf(job));
    }
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) state.replaceWith(notice('The run cannot be followed: reload the page.', 'error'));
  });
}

// Router

let routeSeq = 0;

async function route() {
  following?.close();
  following = null;
  const seq = ++routeSeq;
  // A page still loading when the person goes to another one is not shown over it.
  const render = (...args) => {
    if (seq === routeSeq) show(...args);
  };
  if (!me?.principal) return signInView();
  const [, page, id] = /^#\/([a-z]*)\/?(.*)$/.exec(location.hash) ?? [];
  try {
    if (page === 'catalog') return await catalogView(render);
    if (page === 'owners') return await ownersView(render);
    if (page === 'connect') return await connectView(render, decodeURIComponent(id));
    if (page === 'accounts' && id) return await accountView(render, decodeURIComponent(id));
    if (page === 'jobs' && id) return jobView(render, decodeURIComponent(id));
    return await accountsView(render);
  } catch (error) {
    render(error instanceof ApiError && error.status === 404 ? 'Not found' : 'Something went wrong', failure(error));
  }
}

/** Goes to a page: the hash change routes, or, on the same hash, a route of its own. */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function start() {
  window.addEventListener('hashchange', route);
  if (location.pathname === '/app/signin') {
    const token = new URLSearchParams(location.search).get('token') ?? '';
    // The link's token leaves the address bar (and the history) before anything else happens.
    history.replaceState(null, '', '/app/#/');
    return useLink(token);
  }
  const answer = await api('GET', '/me').catch(() => null);
  if (answer?.principal) signedIn(answer);
  return route();
}

start();
