/**
 * The registrar's dashboard: one self-contained page (no CDN, nothing fetched from elsewhere)
 * that follows `/events` and lists services and instances with their last heartbeat and the
 * time left before eviction. It reads the stream with fetch rather than EventSource so that it
 * can send a token when the registrar protects reads.
 *
 * `/events` carries changes only (renewals would flood every watcher), so the page also reads
 * `/catalog` every few seconds, from the same registrar, to refresh the heartbeat and expiry
 * times of the instances it shows; which instances it shows comes from the event stream alone.
 * A big catalog (over 500 instances) is shown folded, service by service, and times are read
 * only for the services the reader unfolds, with /services/NAME, less often the more instances
 * that is: one open page costs the registrar little whatever the fleet's size.
 * The favicon is inline so the browser does not ask for `/favicon.ico` (a 404 in the console).
 */
export const DASHBOARD_HTML = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>svcmesh registrar</title>
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='6' fill='%231a7f37'/%3E%3C/svg%3E">
<style>
  :root { color-scheme: light dark; --ok: #1a7f37; --warn: #b35900; --bad: #cf222e; --dim: #6e7781; --line: #d0d7de55; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
  header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: baseline; padding: 1rem; border-bottom: 1px solid var(--line); }
  h1 { font-size: 1.15rem; margin: 0; }
  #status { font-size: .85rem; color: var(--dim); }
  #status.live::before { content: "● "; color: var(--ok); }
  #status.down::before { content: "● "; color: var(--bad); }
  #forget { margin-left: auto; font-size: .8rem; }
  main { padding: 0 1rem 2rem; max-width: 70rem; }
  .empty { color: var(--dim); padding: 2rem 0; }
  section { margin-top: 1.25rem; }
  h2 { font-size: 1rem; margin: 0 0 .35rem; font-family: ui-monospace, monospace; }
  /* A service name is one word of up to 128 characters, and notes repeat names and queries:
     broken anywhere rather than making a phone scroll sideways. */
  h2, .more, .empty { overflow-wrap: anywhere; }
  summary { cursor: pointer; }
  summary h2 { display: inline; }
  .more { color: var(--dim); font-size: .85rem; margin: .35rem .5rem; }
  h2 .count { color: var(--dim); font-weight: normal; font-family: system-ui, sans-serif; font-size: .85rem; }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: .35rem .5rem; border-top: 1px solid var(--line); vertical-align: top; }
  th { font-size: .75rem; text-transform: uppercase; letter-spacing: .04em; color: var(--dim); font-weight: 600; }
  td.url, td.meta { font-family: ui-monospace, monospace; word-break: break-all; }
  td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
  .soon { color: var(--warn); }
  .instance-down td.url::after { content: " unreachable"; color: var(--bad); font-family: system-ui, sans-serif; font-size: .8rem; }
  form { display: none; gap: .5rem; margin-top: 1rem; }
  form.shown { display: flex; }
  input { font: inherit; padding: .3rem .5rem; flex: 1; max-width: 20rem; }
  #filter { display: block; width: 100%; margin-top: 1rem; }
  @media (max-width: 40rem) {
    thead { display: none; }
    tr { display: block; border-top: 1px solid var(--line); padding: .35rem 0; }
    td { display: block; border: 0; padding: .1rem .25rem; }
    td[data-label]::before { content: attr(data-label) ": "; color: var(--dim); font-size: .8rem; }
  }
</style>
</head>
<body>
<header>
  <h1>svcmesh registrar</h1>
  <span id="status" role="status" aria-live="polite">connecting…</span>
  <button id="forget" type="button" hidden>forget token</button>
</header>
<main>
  <form id="auth"><input id="token" type="password" placeholder="registrar token" autocomplete="off"><button>Connect</button></form>
  <input id="filter" type="search" placeholder="filter services by name" aria-label="filter services by name" autocomplete="off">
  <div id="services"><p class="empty">Loading…</p></div>
</main>
<script>
(() => {
  const servicesEl = document.getElementById('services');
  const statusEl = document.getElementById('status');
  const authForm = document.getElementById('auth');
  const filterEl = document.getElementById('filter');
  const forgetEl = document.getElementById('forget');
  // Past this many instances in all, services start folded and times come per unfolded service.
  const BIG = 500;
  // Rows drawn for one service, and services drawn: a page of 100 000 is no use to anyone.
  const ROWS_MAX = 500;
  const SERVICES_MAX = 200;
  const REFRESH_MS = 2000;
  // name -> Map(url -> instance): an event touches one entry, whatever the catalog's size.
  // An instance's down mark is the server's own, kept on the instance rather than beside it, so
  // a mark goes with the instance when it is deregistered or evicted and never outlives it.
  let catalog = new Map();
  // What the reader unfolded or folded, which wins over the default for the catalog's size.
  const chosen = new Map();
  const TOKEN_KEY = 'svcmesh-token';
  let token = localStorage.getItem(TOKEN_KEY) || '';
  forgetEl.hidden = !token;
  const auth = () => (token ? { authorization: 'Bearer ' + token } : {});
  // fetch refuses a header holding a character past Latin-1 (a ✓, curly quotes pasted from a
  // document) before sending anything, with the same TypeError as an unreachable registrar: it
  // has to be caught first, or the page would take it for a registrar that is down and retry
  // for ever. Headers applies exactly fetch's rule.
  const UNSENDABLE = 'that token cannot be sent in an HTTP header (use the token exactly as given to --token)';
  const canBeSent = (value) => {
    try {
      new Headers({ authorization: 'Bearer ' + value });
      return true;
    } catch {
      return false;
    }
  };

  const ago = (iso) => {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    return s < 60 ? s + ' s ago' : s < 3600 ? Math.floor(s / 60) + ' min ' + (s % 60) + ' s ago' : Math.floor(s / 3600) + ' h ago';
  };
  const left = (iso) => {
    const s = Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
    return s < 60 ? s + ' s' : s < 3600 ? Math.floor(s / 60) + ' min ' + (s % 60) + ' s' : Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  };
  const cell = (label, text, cls) => {
    const td = document.createElement('td');
    td.dataset.label = label;
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  };
  // model=llama3.2 zone="eu west": plain words as they are, anything else as JSON.
  const metadataText = (metadata) =>
    Object.entries(metadata || {})
      .map(([key, value]) => key + '=' + (typeof value === 'string' && /^\\S+$/.test(value) ? value : JSON.stringify(value)))
      .join(' ');
  const totalInstances = () => {
    let total = 0;
    for (const instances of catalog.values()) total += instances.size;
    return total;
  };
  const isOpen = (name, big) => chosen.get(name) ?? !big;

  // The time cells of the rows on screen, refreshed every second without rebuilding the page
  // (so a URL can be selected and copied).
  let rows = [];
  function tick() {
    for (const { tr, instance, heartbeatCell, expiryCell } of rows) {
      tr.dataset.lastHeartbeat = instance.last_heartbeat;
      heartbeatCell.textContent = ago(instance.last_heartbeat);
      expiryCell.textContent = left(instance.expires_at);
      expiryCell.classList.toggle('soon', (Date.parse(instance.expires_at) - Date.now()) / 1000 < 30);
    }
  }

  function render() {
    rows = [];
    if (catalog.size === 0) {
      servicesEl.innerHTML = '<p class="empty">No services registered.</p>';
      return;
    }
    const query = filterEl.value.trim().toLowerCase();
    const names = [...catalog.keys()].filter((name) => name.toLowerCase().includes(query)).sort();
    const note = (cls, text) => {
      const p = document.createElement('p');
      p.className = cls;
      p.textContent = text;
      return p;
    };
    if (names.length === 0) {
      servicesEl.replaceChildren(note('empty', 'No service name contains "' + query + '".'));
      return;
    }
    const big = totalInstances() > BIG;
    const fragment = document.createDocumentFragment();
    for (const name of names.slice(0, SERVICES_MAX)) {
      const instances = catalog.get(name);
      const section = document.createElement('section');
      section.dataset.service = name;
      const details = document.createElement('details');
      details.open = isOpen(name, big);
      const summary = document.createElement('summary');
      // The summary toggles after its click: what it will become is the opposite of now.
      summary.addEventListener('click', () => {
        chosen.set(name, !details.open);
        scheduleRender();
        refreshSoon();
      });
      const h2 = document.createElement('h2');
      h2.textContent = name + ' ';
      const count = document.createElement('span');
      count.className = 'count';
      count.textContent = instances.size + (instances.size === 1 ? ' instance' : ' instances');
      h2.append(count);
      summary.append(h2);
      details.append(summary);
      if (details.open) {
        const sorted = [...instances.values()].sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
        const table = document.createElement('table');
        // A Metadata column only where an instance has some (the Ollama service's model, say).
        const withMetadata = sorted.some((i) => i.metadata && Object.keys(i.metadata).length > 0);
        table.innerHTML = '<thead><tr><th>URL</th><th>Last heartbeat</th><th>Expires in</th>' + (withMetadata ? '<th>Metadata</th>' : '') + '</tr></thead>';
        const body = document.createElement('tbody');
        for (const instance of sorted.slice(0, ROWS_MAX)) {
          const tr = document.createElement('tr');
          tr.dataset.url = instance.url;
          if (instance.down) tr.className = 'instance-down';
          const heartbeatCell = cell('Last heartbeat', '', 'time');
          const expiryCell = cell('Expires in', '', 'time');
          tr.append(cell('URL', instance.url, 'url'), heartbeatCell, expiryCell);
          if (withMetadata) tr.append(cell('Metadata', metadataText(instance.metadata), 'meta'));
          rows.push({ tr, instance, heartbeatCell, expiryCell });
          body.append(tr);
        }
        table.append(body);
        details.append(table);
        if (sorted.length > ROWS_MAX) {
          details.append(note('more', (sorted.length - ROWS_MAX) + ' more not shown: GET /services/' + name + ' lists them all'));
        }
      }
      section.append(details);
      fragment.append(section);
    }
    if (names.length > SERVICES_MAX) {
      fragment.append(note('more', (names.length - SERVICES_MAX) + ' more services not shown: filter by name to find one'));
    }
    servicesEl.replaceChildren(fragment);
    tick();
  }

  // Events can come by the thousand (a fleet starting): the page is drawn at most 5 times a second.
  let renderTimer;
  function scheduleRender() {
    if (renderTimer === undefined) renderTimer = setTimeout(() => ((renderTimer = undefined), render()), 200);
  }

  function takeTimes(name, fresh) {
    const instance = catalog.get(name)?.get(fresh.url);
    if (instance && Date.parse(fresh.last_heartbeat) > Date.parse(instance.last_heartbeat)) {
      instance.last_heartbeat = fresh.last_heartbeat;
      instance.expires_at = fresh.expires_at;
    }
  }

  // Heartbeats are not events: take the newer times of the instances already shown. A small
  // catalog comes whole from /catalog; a big one, one unfolded service at a time, and less
  // often the more instances that is, so an open dashboard never weighs much on the registrar.
  let live = false;
  let refreshTimer;
  async function refreshTimes() {
    refreshTimer = undefined;
    let fetched = 0;
    try {
      if (!live || document.hidden) return;
      const small = totalInstances() <= BIG;
      const sources = small ? ['catalog'] : [...chosen.keys()].filter((name) => catalog.has(name) && isOpen(name, true)).map((name) => 'services/' + encodeURIComponent(name));
      for (const source of sources) {
        const response = await fetch(source, { headers: auth() });
        if (!response.ok) continue;
        const data = await response.json();
        if (small) {
          for (const [name, instances] of Object.entries(data.services)) for (const fresh of instances) takeTimes(name, fresh);
          fetched += totalInstances();
        } else {
          for (const fresh of data.instances) takeTimes(data.name, fresh);
          fetched += data.instances.length;
        }
      }
      tick();
    } catch {
      // The event stream reports a registrar that is gone; the next round tries again.
    } finally {
      const wait = Math.min(60000, REFRESH_MS * Math.max(1, Math.ceil(fetched / BIG)));
      if (refreshTimer === undefined) refreshTimer = setTimeout(refreshTimes, wait);
    }
  }
  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshTimes, 0);
  }

  function apply(data) {
    if (data.type === 'snapshot') {
      catalog = new Map(Object.entries(data.services).map(([name, instances]) => [name, new Map(instances.map((i) => [i.url, i]))]));
    } else if (data.type === 'down' || data.type === 'up') {
      const instance = catalog.get(data.name)?.get(data.instance.url);
      if (instance) instance.down = data.type === 'down';
    } else if (data.type === 'registered' || data.type === 'updated') {
      if (!catalog.has(data.name)) catalog.set(data.name, new Map());
      catalog.get(data.name).set(data.instance.url, data.instance);
    } else {
      const instances = catalog.get(data.name);
      instances?.delete(data.instance.url);
      if (instances?.size === 0) catalog.delete(data.name);
    }
    scheduleRender();
  }

  function keepToken(value) {
    token = value;
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
    forgetEl.hidden = !value;
  }

  // A token that will not do is not kept: a reload would only try it again.
  function askForToken(why) {
    keepToken('');
    statusEl.className = 'down';
    statusEl.textContent = why;
    authForm.classList.add('shown');
  }

  // The registrar's 401 says what is wrong with the token (never the token itself).
  async function refusalReason(response) {
    const body = await response.json().catch(() => ({}));
    return typeof body.error === 'string' ? body.error : 'HTTP ' + response.status;
  }

  async function follow() {
    let retry = 500;
    for (;;) {
      try {
        const response = await fetch('events', { headers: auth() });
        if (response.status === 401) {
          askForToken(token ? 'token not accepted: ' + (await refusalReason(response)) : 'this registrar needs a token');
          return;
        }
        if (!response.ok || !response.body) throw new Error('HTTP ' + response.status);
        statusEl.className = 'live';
        statusEl.textContent = 'live';
        live = true;
        retry = 500;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        // Chunks are only joined once an event is complete: the snapshot of a big catalog is
        // megabytes, and searching all of it again at every chunk would take the page seconds.
        let pending = [];
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const last = pending.length ? pending[pending.length - 1] : '';
          if (!(last.endsWith('\\n') && value.startsWith('\\n')) && !value.includes('\\n\\n')) {
            pending.push(value);
            continue;
          }
          let buffer = pending.join('') + value;
          let end;
          while ((end = buffer.indexOf('\\n\\n')) !== -1) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block.split('\\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\\n');
            if (data) apply(JSON.parse(data));
          }
          pending = buffer ? [buffer] : [];
        }
        throw new Error('stream ended');
      } catch (error) {
        live = false;
        statusEl.className = 'down';
        statusEl.textContent = 'reconnecting…';
        await new Promise((resolve) => setTimeout(resolve, retry));
        retry = Math.min(retry * 2, 5000);
      }
    }
  }

  authForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = document.getElementById('token').value;
    if (!canBeSent(value)) return askForToken(UNSENDABLE);
    keepToken(value);
    authForm.classList.remove('shown');
    statusEl.className = '';
    statusEl.textContent = 'connecting…';
    follow();
  });
  // The open stream was let in with the token: only a new page shows what can be seen without it.
  forgetEl.addEventListener('click', () => {
    keepToken('');
    location.reload();
  });
  filterEl.addEventListener('input', scheduleRender);
  setInterval(tick, 1000);
  refreshTimer = setTimeout(refreshTimes, REFRESH_MS);
  if (canBeSent(token)) follow();
  else askForToken(UNSENDABLE);
})();
</script>
</body>
</html>
`;
