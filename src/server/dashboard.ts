/**
 * The registrar's dashboard: one self-contained page (no CDN, nothing fetched from elsewhere)
 * that follows `/events` and lists services and instances with their last heartbeat and the
 * time left before eviction. It reads the stream with fetch rather than EventSource so that it
 * can send a token when the registrar protects reads.
 *
 * `/events` carries changes only (renewals would flood every watcher), so the page also reads
 * `/catalog` every few seconds, from the same registrar, to refresh the heartbeat and expiry
 * times of the instances it shows; which instances it shows comes from the event stream alone.
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
  main { padding: 0 1rem 2rem; max-width: 70rem; }
  .empty { color: var(--dim); padding: 2rem 0; }
  section { margin-top: 1.25rem; }
  h2 { font-size: 1rem; margin: 0 0 .35rem; font-family: ui-monospace, monospace; }
  h2 .count { color: var(--dim); font-weight: normal; font-family: system-ui, sans-serif; font-size: .85rem; }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: .35rem .5rem; border-top: 1px solid var(--line); vertical-align: top; }
  th { font-size: .75rem; text-transform: uppercase; letter-spacing: .04em; color: var(--dim); font-weight: 600; }
  td.url { font-family: ui-monospace, monospace; word-break: break-all; }
  td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
  .soon { color: var(--warn); }
  .instance-down td.url::after { content: " unreachable"; color: var(--bad); font-family: system-ui, sans-serif; font-size: .8rem; }
  form { display: none; gap: .5rem; margin-top: 1rem; }
  form.shown { display: flex; }
  input { font: inherit; padding: .3rem .5rem; flex: 1; max-width: 20rem; }
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
</header>
<main>
  <form id="auth"><input id="token" type="password" placeholder="registrar token" autocomplete="off"><button>Connect</button></form>
  <div id="services"><p class="empty">Loading…</p></div>
</main>
<script>
(() => {
  const servicesEl = document.getElementById('services');
  const statusEl = document.getElementById('status');
  const authForm = document.getElementById('auth');
  let catalog = {};
  const down = new Set();
  let token = localStorage.getItem('svcmesh-token') || '';

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
    const names = Object.keys(catalog).sort();
    if (names.length === 0) {
      servicesEl.innerHTML = '<p class="empty">No services registered.</p>';
      return;
    }
    const fragment = document.createDocumentFragment();
    for (const name of names) {
      const instances = catalog[name].slice().sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
      const section = document.createElement('section');
      section.dataset.service = name;
      const h2 = document.createElement('h2');
      h2.textContent = name + ' ';
      const count = document.createElement('span');
      count.className = 'count';
      count.textContent = instances.length + (instances.length === 1 ? ' instance' : ' instances');
      h2.append(count);
      const table = document.createElement('table');
      table.innerHTML = '<thead><tr><th>URL</th><th>Last heartbeat</th><th>Expires in</th></tr></thead>';
      const body = document.createElement('tbody');
      for (const instance of instances) {
        const tr = document.createElement('tr');
        tr.dataset.url = instance.url;
        if (down.has(name + ' ' + instance.url)) tr.className = 'instance-down';
        const heartbeatCell = cell('Last heartbeat', '', 'time');
        const expiryCell = cell('Expires in', '', 'time');
        tr.append(cell('URL', instance.url, 'url'), heartbeatCell, expiryCell);
        rows.push({ tr, instance, heartbeatCell, expiryCell });
        body.append(tr);
      }
      table.append(body);
      section.append(h2, table);
      fragment.append(section);
    }
    servicesEl.replaceChildren(fragment);
    tick();
  }

  // Heartbeats are not events: take the newer times of the instances already shown from /catalog.
  let live = false;
  async function refreshTimes() {
    if (!live || document.hidden) return;
    try {
      const response = await fetch('catalog', { headers: token ? { authorization: 'Bearer ' + token } : {} });
      if (!response.ok) return;
      const { services } = await response.json();
      for (const [name, instances] of Object.entries(catalog)) {
        for (const instance of instances) {
          const fresh = (services[name] || []).find((i) => i.url === instance.url);
          if (fresh && Date.parse(fresh.last_heartbeat) > Date.parse(instance.last_heartbeat)) {
            instance.last_heartbeat = fresh.last_heartbeat;
            instance.expires_at = fresh.expires_at;
          }
        }
      }
      tick();
    } catch {
      // The event stream reports a registrar that is gone; the next round tries again.
    }
  }

  function apply(data) {
    if (data.type === 'snapshot') {
      catalog = data.services;
      down.clear();
    } else if (data.type === 'down' || data.type === 'up') {
      const key = data.name + ' ' + data.instance.url;
      if (data.type === 'down') down.add(key); else down.delete(key);
    } else {
      const others = (catalog[data.name] || []).filter((i) => i.url !== data.instance.url);
      if (data.type === 'registered' || data.type === 'updated') catalog[data.name] = others.concat([data.instance]);
      else if (others.length) catalog[data.name] = others;
      else delete catalog[data.name];
    }
    render();
  }

  async function follow() {
    let retry = 500;
    for (;;) {
      try {
        const response = await fetch('events', { headers: token ? { authorization: 'Bearer ' + token } : {} });
        if (response.status === 401) {
          statusEl.className = 'down';
          statusEl.textContent = 'this registrar needs a token';
          authForm.classList.add('shown');
          return;
        }
        if (!response.ok || !response.body) throw new Error('HTTP ' + response.status);
        statusEl.className = 'live';
        statusEl.textContent = 'live';
        live = true;
        retry = 500;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\\n\\n')) !== -1) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block.split('\\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\\n');
            if (data) apply(JSON.parse(data));
          }
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
    token = document.getElementById('token').value;
    localStorage.setItem('svcmesh-token', token);
    authForm.classList.remove('shown');
    follow();
  });
  setInterval(tick, 1000);
  setInterval(refreshTimes, 2000);
  follow();
})();
</script>
</body>
</html>
`;
