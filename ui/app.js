// gdpm's web interface: reads the master's HTTP API (polling, and the
// GET /events stream to redraw at once when something changes) and drives
// it with the same routes and token as the CLI. Plain DOM, no framework,
// no build step.
//
// It stays honest when things fail: when a read fails every table is
// marked stale with the time of the last good read, a banner says why, and
// the page recovers by itself once the master answers again.
'use strict';

(() => {
  const POLL_MS = 2000;
  const READ_TIMEOUT_MS = 5000; // a read that takes longer counts as failed
  const EVENT_SILENCE_MS = 45000; // no byte, not even a heartbeat: reconnect
  const EVENT_BACKFILL = 500; // revisions of history shown when the page opens
  const MAX_EVENTS = 200;
  const MAX_LOG_LINES = 2000;
  const TOKEN_KEY = 'gdpm.token';
  // The API lives beside /ui/, also when the master is mounted under a prefix.
  const API = new URL('../', location.href);

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  let selected = ''; // the service in the detail panel
  let scaleEdited = false; // the user is typing a count: do not overwrite it
  let pollTimer = 0;
  let polling = false;
  let pollAgain = false;
  let lastGood = 0; // when every table was last read (ms), 0 = never
  let connState = ''; // what the connection line says: only changes are announced
  const drawn = {}; // table id -> the rows last drawn, as JSON
  const serviceNames = new Map(); // service id -> command
  const nodeNames = new Map(); // node id -> hostname
  // node id -> when it registered, exactly (GET /node/ says it to the
  // minute, in the master's zone)
  const nodeJoined = new Map();

  // --- the token ---

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY) || '';
  }

  function saveToken(value, remember) {
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
    if (value) (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, value);
    showToken();
    tokenChanged();
  }

  function showToken() {
    const input = $('token');
    input.value = '';
    input.placeholder = token() ? 'token set' : 'cluster token';
    $('remember').checked = localStorage.getItem(TOKEN_KEY) !== null;
  }

  // --- talking to the master ---

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // call sends one same-origin request and returns the response, or throws
  // an APIError carrying the master's {"error": "..."} message; status 0
  // means no answer at all. timeout bounds the wait for the answer's head.
  async function call(method, path, {body, signal, accept = 'application/json', timeout = 0, extra = {}} = {}) {
    const headers = {...extra, Accept: accept};
    const t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    const ctl = new AbortController();
    const abort = () => ctl.abort();
    if (signal) {
      if (signal.aborted) abort();
      signal.addEventListener('abort', abort, {once: true});
    }
    let timedOut = false;
    const timer = timeout ? setTimeout(() => { timedOut = true; abort(); }, timeout) : 0;
    const init = {method, headers, signal: ctl.signal, cache: 'no-store', credentials: 'same-origin', mode: 'same-origin'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(new URL(path, API), init);
    } catch (err) {
      if (signal && signal.aborted) throw err;
      throw new APIError(0, timedOut ? `no answer from the master within ${timeout / 1000} s` : 'master unreachable');
    } finally {
      clearTimeout(timer);
      if (signal) signal.removeEventListener('abort', abort);
    }
    if (!res.ok) throw new APIError(res.status, await errorText(res));
    return res;
  }

  async function errorText(res) {
    try {
      const body = await res.json();
      if (body && body.error) return body.error;
    } catch (_) {
      // not JSON: fall back to the status line
    }
    return `${res.status} ${res.statusText}`.trim();
  }

  const getJSON = async (path) => (await call('GET', path, {timeout: READ_TIMEOUT_MS})).json();
  const servicePath = (id) => `service/${encodeURIComponent(id)}/`;

  // lines reads an NDJSON answer and calls each(value) for every JSON line;
  // empty lines are heartbeats, for which alive() is called.
  async function lines(res, each, alive) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let rest = '';
    const take = (raw) => {
      if (!raw.trim()) return;
      let v;
      try {
        v = JSON.parse(raw);
      } catch (_) {
        return;
      }
      each(v);
    };
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      if (alive) alive();
      const parts = (rest + value).split('\n');
      rest = parts.pop();
      parts.forEach(take);
    }
    take(rest);
  }

  // --- drawing ---

  // el builds an element; strings become text, never markup.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role') e.setAttribute(k, v === true ? 'true' : v);
      else e[k] = v;
    }
    e.append(...children.filter((c) => c !== undefined && c !== null).map((c) => (c instanceof Node ? c : String(c))));
    return e;
  }

  const short = (id) => (id ? id.slice(0, 8) : '');
  // shortIDs shortens the UUIDs in a message as the tables do.
  const shortIDs = (s) => s.replace(/\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, '$1');
  const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);
  const idCode = (id) => el('code', {title: id}, short(id));
  const idCell = (id) => el('td', {}, id ? idCode(id) : '–');

  // --- time: one format, relative, with the absolute UTC time on hover ---

  function absolute(ms) {
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  function relative(ms) {
    const s = Math.round((Date.now() - ms) / 1000);
    const a = Math.abs(s);
    let t;
    if (a < 5) return 'just now';
    if (a < 60) t = `${a} s`;
    else if (a < 3600) t = `${Math.floor(a / 60)} min`;
    else if (a < 48 * 3600) t = `${Math.floor(a / 3600)} h`;
    else t = `${Math.floor(a / 86400)} d`;
    return s >= 0 ? `${t} ago` : `in ${t}`;
  }

  // parseTime reads an RFC 3339 time, or a time.RFC822 one such as
  // "07 Jun 22 22:03 UTC" (GET /node/ has those); NaN when it cannot.
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  function parseTime(s) {
    if (!s || s.startsWith('0001-')) return NaN;
    const m = /^(\d\d) (\w{3}) (\d\d) (\d\d):(\d\d) (UTC|GMT|Z)$/.exec(s);
    if (m) return Date.UTC(2000 + Number(m[3]), MONTHS.indexOf(m[2]), Number(m[1]), Number(m[4]), Number(m[5]));
    if (/^\d\d \w{3} \d\d /.test(s)) return NaN; // another zone: its offset is unknown here
    return Date.parse(s);
  }

  // when is a <time> showing how long ago s was, the exact UTC time on
  // hover; text it cannot read is shown as it is.
  function when(s) {
    const ms = typeof s === 'number' ? s : parseTime(s);
    if (isNaN(ms)) return el('span', {}, s || '');
    return el('time', {dateTime: new Date(ms).toISOString(), title: absolute(ms), 'data-ts': ms}, relative(ms));
  }

  function tickTimes() {
    for (const t of document.querySelectorAll('time[data-ts]')) {
      const text = relative(Number(t.dataset.ts));
      if (t.textContent !== text) t.textContent = text;
    }
    if (lastGood) $('offline-ago').textContent = `(${relative(lastGood)})`;
  }

  // fill redraws the body of table id from rows, unless they are what is
  // shown already, and shows the table's "empty" note when there are none.
  // Each cell is labelled with its column, for the narrow layout.
  function fill(id, rows, draw) {
    const table = $(id);
    const key = JSON.stringify(rows);
    if (drawn[id] === key) return;
    drawn[id] = key;
    const heads = [...table.tHead.rows[0].cells].map((th) => th.textContent.trim());
    const trs = rows.map(draw);
    for (const tr of trs) [...tr.cells].forEach((td, i) => heads[i] && td.setAttribute('data-label', heads[i]));
    // Keep the focused control focused across a redraw.
    const focused = table.contains(document.activeElement) ? document.activeElement.getAttribute('aria-label') : null;
    table.tBodies[0].replaceChildren(...trs);
    if (focused) {
      const again = [...table.querySelectorAll('[aria-label]')].find((e) => e.getAttribute('aria-label') === focused);
      if (again) again.focus();
    }
    table.hidden = rows.length === 0;
    const empty = table.nextElementSibling;
    if (empty && empty.classList.contains('empty')) empty.hidden = rows.length > 0;
  }

  // --- connection state ---

  // setConn shows the state of the connection to the master; the line is a
  // live region, so it changes only when the state does.
  function setConn(state, text) {
    if (connState === state + text) return;
    connState = state + text;
    const c = $('conn');
    c.textContent = text;
    c.className = 'conn conn-' + state;
  }

  // markStale greys every table and says why, keeping what was last read.
  function markStale(err) {
    document.body.classList.add('stale');
    for (const t of document.querySelectorAll('table.data')) t.classList.add('stale');
    for (const s of document.querySelectorAll('.stale-tag')) {
      s.hidden = false;
      s.title = lastGood ? 'last good read ' + absolute(lastGood) : 'nothing read yet';
    }
    const since = lastGood ? ` Showing what it said at ${absolute(lastGood)}.` : ' Nothing could be read yet.';
    let title;
    if (err.status === 0) title = 'Master unreachable.';
    else if (err.status === 401) title = token() ? 'The master refuses the token.' : 'Token needed: enter the cluster token above.';
    else title = `The master cannot answer: ${err.message}.`;
    const detail = `${since} Retrying every ${POLL_MS / 1000} s.`;
    $('offline').hidden = false;
    if ($('offline-title').textContent !== title) $('offline-title').textContent = title;
    if ($('offline-detail').textContent !== detail) $('offline-detail').textContent = detail;
    tickTimes();
  }

  function markFresh() {
    lastGood = Date.now();
    document.body.classList.remove('stale');
    for (const t of document.querySelectorAll('table.data')) t.classList.remove('stale');
    for (const s of document.querySelectorAll('.stale-tag')) s.hidden = true;
    $('offline').hidden = true;
    $('offline-title').textContent = '';
    $('offline-detail').textContent = '';
  }

  // --- the notes beside the controls ---

  const noteTimers = new WeakMap();

  // say shows text in the note of the panel holding control: next to what
  // the user clicked, scrolled into view, and announced (a live region).
  function say(control, text, isError) {
    const panel = control.closest('section, form.token');
    const note = panel && panel.querySelector('.note');
    if (!note) return;
    note.textContent = text;
    note.classList.toggle('err', !!isError);
    note.hidden = false;
    clearTimeout(noteTimers.get(note));
    if (!isError) noteTimers.set(note, setTimeout(() => (note.hidden = true), 6000));
    note.scrollIntoView({block: 'nearest'});
  }

  function clearNote(control) {
    const panel = control.closest('section, form.token');
    const note = panel && panel.querySelector('.note');
    if (note && note.classList.contains('err')) note.hidden = true;
  }

  // --- the tables ---

  function drawNodes(n) {
    const status = {1: 'online', 2: 'draining'};
    const at = (a, i) => (a && a[i] !== undefined ? a[i] : 0);
    const rows = n.Ids.map((id, i) => ({id, status: n.Status[i], services: n.ServiceNum[i], time: nodeJoined.get(id) || n.Times[i],
      host: at(n.Hostnames, i) || nodeNames.get(id) || '', instances: at(n.Instances, i), cpu: at(n.CPU, i), rss: at(n.RSS, i),
      cores: at(n.Cores, i), mem: at(n.MemTotal, i), load: at(n.Load1, i)}));
    for (const r of rows) if (r.host) nodeNames.set(r.id, r.host);
    $('node-count').textContent = `(${rows.length})`;
    fill('nodes', rows, (r) => el('tr', {},
      el('td', {}, r.host ? el('span', {className: 'host-name'}, r.host + ' ') : null, idCode(r.id)),
      el('td', {}, el('span', {className: 'state state-' + (status[r.status] || 'unknown')}, status[r.status] || r.status)),
      el('td', {className: 'num', title: r.cores ? `${r.cores} cores, load ${r.load.toFixed(2)}` : ''}, percent(r.cpu) + (r.cores ? ` / ${r.cores} cores` : '')),
      el('td', {className: 'num'}, bytes(r.rss) + (r.mem ? ` / ${bytes(r.mem)}` : '')),
      el('td', {className: 'num'}, r.instances),
      el('td', {className: 'num'}, r.services),
      el('td', {}, when(r.time))));
  }

  // percent is CPU use in percent of one core; bytes a size in binary units.
  const percent = (p) => (p >= 10 ? p.toFixed(0) : (p || 0).toFixed(1)) + '%';
  function bytes(n) {
    if (!n) return '0';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (n >= 10 || i === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
  }

  // statusWhy is what a service's status word means, for its tooltip.
  const STATUS_WHY = {
    running: 'every desired instance runs',
    degraded: 'fewer instances run (or are healthy) than desired',
    crashlooping: 'an instance keeps exiting and restarting',
    failed: 'an instance reached its restart limit or ended badly; restart or update the service',
    pending: 'no instance runs yet: waiting for a node',
    stopped: 'stopped: no instance runs',
    updating: 'a rollout replaces the instances',
    halted: 'the rollout stopped on a failing new instance',
  };

  // statusText is a service's status, with a rollout's progress.
  function statusText(s) {
    if (s.Status === 'updating') return `updating ${s.Updated}/${s.InstanceNum}`;
    if (s.Status === 'crashlooping' || s.Status === 'failed') return `${s.Status} ↺${s.Restarts || 0}`;
    return s.Status || '';
  }

  function drawServices(list) {
    for (const s of list) serviceNames.set(s.ID, s.Name || s.Command);
    $('service-count').textContent = `(${list.length})`;
    const rows = list.map((s) => ({...s, selected: s.ID === selected}));
    fill('services', rows, (s) => {
      const running = `${s.Running} / ${s.InstanceNum}` + (s.Pending ? ` (${s.Pending} pending)` : '');
      return el('tr', {'data-service': s.ID, className: s.selected ? 'selected' : '', 'aria-current': s.selected ? 'true' : null},
        el('td', {}, el('button', {type: 'button', className: 'open', 'data-open': s.ID,
          'aria-label': `Open service ${s.Name || short(s.ID)}: ${s.Command}`, title: s.ID}, s.Name || short(s.ID))),
        el('td', {}, idCode(s.ID)),
        el('td', {}, el('span', {className: 'state state-' + (s.Status || 'unknown'),
          title: s.RolloutError || (s.LastError ? `${STATUS_WHY[s.Status] || ''}; last error: ${s.LastError.Message}` : STATUS_WHY[s.Status] || '')}, statusText(s))),
        el('td', {className: 'cmd'}, el('code', {title: s.Command}, s.Command)),
        el('td', {className: 'num'}, running),
        el('td', {className: 'num restarts'}, String(s.Restarts || 0)),
        el('td', {className: 'num cpu'}, percent(s.CPU)),
        el('td', {className: 'num mem'}, bytes(s.RSS)),
        el('td', {}, s.Restart),
        el('td', {}, when(s.CreatedAt)));
    });
  }

  function drawDetail(d) {
    $('detail-id').textContent = d.ID;
    $('detail-name').textContent = d.Name || '';
    $('detail-command').textContent = d.Command;
    const stopped = d.Status === 'stopped';
    $('stop').hidden = stopped;
    $('start').hidden = !stopped;
    const ro = $('detail-rollout');
    let roText = '';
    if (d.Status === 'updating') roText = `Rolling out version ${d.Version}: ${d.Updated} of ${d.InstanceNum} instances updated.`;
    else if (d.Status === 'halted') roText = `Rollout halted: ${d.RolloutError}. The old instances run on; apply the previous spec to roll back.`;
    else if (stopped) roText = `Stopped: no instance runs; Start brings back ${d.InstanceNum}.`;
    if (ro.textContent !== roText) ro.textContent = roText;
    ro.hidden = !roText;
    ro.className = 'meta' + (d.Status === 'halted' ? ' err' : '');
    $('detail-summary').textContent =
      `${d.Running} of ${d.InstanceNum} running` + (d.Pending ? `, ${d.Pending} pending` : '') +
      ` · restart ${d.Restart} · stop timeout ${d.StopTimeout}`;
    const health = $('detail-health');
    let hText = `Status: ${d.Status} (${STATUS_WHY[d.Status] || ''}) · ${d.Restarts || 0} restarts · CPU ${percent(d.CPU)} · memory ${bytes(d.RSS)}`;
    if (d.LastError) hText += ` · last error: ${d.LastError.Message} (instance ${short(d.LastError.Instance)}, ${absolute(Date.parse(d.LastError.Since))})`;
    if (health.textContent !== hText) health.textContent = hText;
    health.className = 'meta' + (['failed', 'crashlooping', 'halted'].includes(d.Status) ? ' err' : '');
    const scale = $('scale-instances');
    if (!scaleEdited && document.activeElement !== scale) scale.value = d.InstanceNum;
    for (const i of d.Instances) addLogInstance(i.ID);
    fill('instances', d.Instances, (i) => {
      // The last error, unless the exit code column says it already.
      let outcome = i.Error || (i.LastError && !i.LastError.startsWith('exit code') ? i.LastError : '');
      if (i.ExitCode !== undefined && i.ExitCode !== null) outcome = `exit ${i.ExitCode}` + (outcome ? `: ${outcome}` : '');
      const old = i.Version && d.Version && i.Version !== d.Version;
      return el('tr', {'data-state': i.State, 'data-old': old ? 'true' : null},
        idCell(i.ID),
        el('td', {className: 'num', title: old ? 'an older version, being replaced' : ''}, String(i.Index ?? '') + (old ? ' (old)' : '')),
        idCell(i.Node),
        el('td', {}, el('span', {className: 'state state-' + i.State}, i.State)),
        el('td', {}, i.Health ? el('span', {className: 'state state-' + i.Health}, i.Health) : '–'),
        el('td', {className: 'num'}, i.PID || ''),
        el('td', {className: 'num'}, i.PID ? percent(i.CPU) : ''),
        el('td', {className: 'num'}, i.PID ? bytes(i.RSS) : ''),
        el('td', {className: 'num'}, i.Restarts),
        el('td', {}, when(i.StartedAt)),
        el('td', {className: 'outcome'}, outcome),
        el('td', {}, el('button', {type: 'button', className: 'log', disabled: !i.Node, 'data-instance': i.ID,
          'aria-label': `Log of instance ${short(i.ID)}`}, 'Log')));
    });
  }

  // --- polling ---

  // refresh reads nodes, services and the open service, then polls again
  // after POLL_MS; a call while one runs makes it run once more at the end.
  async function refresh() {
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    clearTimeout(pollTimer);
    try {
      const [nodes, services] = await Promise.all([getJSON('node/'), getJSON('service/')]);
      drawNodes(nodes);
      drawServices(services.Services);
      if (selected) await refreshDetail();
      markFresh();
      setConn('ok', 'connected');
      $('token-form').classList.remove('needed');
    } catch (err) {
      markStale(err);
      if (err.status === 401) {
        setConn('err', 'token needed');
        $('token-form').classList.add('needed');
      } else if (err.status === 0) {
        setConn('err', 'master unreachable');
      } else {
        setConn('err', 'master error');
      }
    } finally {
      polling = false;
    }
    if (pollAgain) {
      pollAgain = false;
      refresh();
    } else {
      pollTimer = setTimeout(refresh, POLL_MS);
    }
  }

  // soon runs refresh shortly, once however often it is asked: events
  // come in bursts (a scale is a placement and a start per instance).
  let soonTimer = 0;
  function soon() {
    if (!soonTimer) soonTimer = setTimeout(() => { soonTimer = 0; refresh(); }, 150);
  }

  async function refreshDetail() {
    const id = selected;
    try {
      const d = await getJSON(servicePath(id));
      if (id === selected) drawDetail(d);
    } catch (err) {
      if (err.status !== 404) throw err;
      if (id === selected) closeDetail();
    }
  }

  // --- the service panel ---

  function openDetail(id) {
    if (id !== selected) {
      closeLog();
      scaleEdited = false;
      delete drawn.instances;
      $('instances').tBodies[0].replaceChildren();
      $('detail').querySelector('.note').hidden = true;
    }
    selected = id;
    delete drawn.services; // move the highlight
    $('detail').hidden = false;
    disarmDelete();
    refresh();
  }

  function closeDetail() {
    selected = '';
    closeLog();
    $('detail').hidden = true;
    delete drawn.services; // drop the highlight
  }

  let deleteTimer = 0;
  function disarmDelete() {
    clearTimeout(deleteTimer);
    const b = $('delete');
    b.textContent = 'Delete';
    delete b.dataset.armed;
  }

  // --- the merged log of a service ---

  // One stream carries every instance's lines (GET /service/:id/logs
  // without instance); the instance filter only hides lines, so changing
  // it loses nothing. A LogLine's Time (when the line was captured) is
  // shown and orders the lines; a line with a Mark is the slave's marker
  // of a process start or exit, shown as a marker line in its place.
  const log = {
    service: '',
    abort: null,
    paused: false,
    held: [], // lines that came while paused
    instances: new Map(), // instance id -> colour index
  };

  function addLogInstance(id) {
    if (!id || log.instances.has(id)) return;
    log.instances.set(id, log.instances.size % 6);
    const f = $('log-filter');
    f.append(el('option', {value: id}, 'instance ' + short(id)));
  }

  function openLog(service, instance) {
    if (log.service !== service || !log.abort) {
      closeLog();
      const ctl = new AbortController();
      log.abort = ctl;
      log.service = service;
      log.instances = new Map();
      $('log-filter').replaceChildren(el('option', {value: ''}, 'all instances'));
      $('log-lines').replaceChildren();
      followLog(service, ctl.signal);
    }
    $('log').hidden = false;
    $('log-title').textContent = short(service);
    addLogInstance(instance);
    $('log-filter').value = instance || '';
    applyFilter();
    $('log').scrollIntoView({block: 'nearest'});
  }

  function closeLog() {
    if (log.abort) log.abort.abort();
    log.abort = null;
    log.service = '';
    log.held = [];
    setPaused(false);
    $('log').hidden = true;
  }

  function setLogState(text, isError) {
    const s = $('log-state');
    if (s.textContent !== text) s.textContent = text;
    s.classList.toggle('err', !!isError);
  }

  function setPaused(p) {
    log.paused = p;
    const b = $('log-pause');
    b.setAttribute('aria-pressed', String(p));
    b.textContent = p ? 'Resume' : 'Pause';
    if (!p && log.held.length) {
      const held = log.held;
      log.held = [];
      appendLog(held);
    }
    if (log.abort) setLogState(p ? 'paused' : 'following');
  }

  // followLog reads the service's merged stream until signal aborts it;
  // when the stream breaks (the master went away) it reconnects for the
  // new lines only, and says that lines may be missing in between.
  async function followLog(service, signal) {
    let tail = 200;
    let wait = 1000;
    for (;;) {
      setLogState(log.paused ? 'paused' : 'following');
      try {
        const q = new URLSearchParams({tail: String(tail), follow: '1'});
        const res = await call('GET', `${servicePath(service)}logs/?${q}`, {signal, accept: 'application/x-ndjson', timeout: READ_TIMEOUT_MS});
        if (tail === 0) appendLog([{gap: 'reconnected: lines written while the log was disconnected are not shown'}]);
        wait = 1000;
        let batch = [];
        let flush = 0;
        await lines(res, (l) => {
          batch.push(l);
          if (!flush) flush = setTimeout(() => { flush = 0; const b = batch; batch = []; appendLog(b); }, 50);
        });
        clearTimeout(flush);
        appendLog(batch);
        if (signal.aborted) return;
        setLogState('stream ended; reconnecting', true);
      } catch (err) {
        if (signal.aborted) return;
        if (err.status === 404) {
          setLogState('the service is gone', true);
          return;
        }
        setLogState(`${err.message}; retrying`, true);
      }
      tail = 0;
      await sleep(wait);
      wait = Math.min(wait * 2, 10000);
      if (signal.aborted) return;
    }
  }

  function lineTime(l) {
    const ms = l.Time ? Date.parse(l.Time) : NaN;
    return isNaN(ms) || l.Time.startsWith('0001-') ? NaN : ms;
  }

  function appendLog(batch) {
    if (!batch.length) return;
    if (log.paused) {
      log.held.push(...batch);
      if (log.held.length > MAX_LOG_LINES) log.held.splice(0, log.held.length - MAX_LOG_LINES);
      setLogState(`paused · ${log.held.length} new ${log.held.length === 1 ? 'line' : 'lines'}`);
      return;
    }
    const box = $('log-lines');
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    const filter = $('log-filter').value;
    for (const l of batch) {
      let row;
      if (l.gap) {
        row = el('div', {className: 'line gap', 'data-instance': l.instance || null}, '— ' + l.gap + ' —');
        if (l.instance) row.hidden = !!filter && filter !== l.instance;
      } else if (l.Mark) {
        addLogInstance(l.Instance);
        const ms = lineTime(l);
        row = el('div', {className: 'line gap', 'data-instance': l.Instance, 'data-mark': l.Mark, 'data-ts': isNaN(ms) ? null : ms},
          isNaN(ms) ? null : el('time', {className: 'at', dateTime: l.Time, title: absolute(ms)}, new Date(ms).toISOString().slice(11, 23)),
          el('span', {className: 'text'}, `— instance ${short(l.Instance)} ${l.Line} · node ${short(l.Node)} —`));
        row.hidden = !!filter && filter !== l.Instance;
      } else {
        addLogInstance(l.Instance);
        const ms = lineTime(l);
        const err = l.Stream === 'stderr';
        row = el('div', {className: 'line' + (err ? ' stderr' : ''), 'data-instance': l.Instance, 'data-stream': l.Stream, 'data-ts': isNaN(ms) ? null : ms},
          isNaN(ms) ? null : el('time', {className: 'at', dateTime: l.Time, title: absolute(ms)}, new Date(ms).toISOString().slice(11, 23)),
          el('span', {className: 'inst c' + (log.instances.get(l.Instance) || 0), title: 'instance ' + l.Instance}, short(l.Instance)),
          el('span', {className: err ? 'tag-err' : 'tag-out', title: l.Stream}, err ? 'err' : 'out'),
          el('span', {className: 'text'}, l.Line));
        row.hidden = !!filter && filter !== l.Instance;
      }
      insertLine(box, row);
    }
    while (box.childElementCount > MAX_LOG_LINES) box.firstElementChild.remove();
    if (atEnd) box.scrollTop = box.scrollHeight;
  }

  // insertLine appends row, or puts it before the last lines captured
  // after it, when lines carry their capture time.
  function insertLine(box, row) {
    const ts = Number(row.dataset.ts);
    let before = null;
    if (row.dataset.ts) {
      for (let e = box.lastElementChild, n = 0; e && n < 500; e = e.previousElementSibling, n++) {
        if (!e.dataset.ts || Number(e.dataset.ts) <= ts) break;
        before = e;
      }
    }
    box.insertBefore(row, before);
  }

  function applyFilter() {
    const f = $('log-filter').value;
    for (const row of $('log-lines').children) {
      if (row.dataset.instance) row.hidden = !!f && f !== row.dataset.instance;
    }
    $('log-lines').scrollTop = $('log-lines').scrollHeight;
  }

  // --- the events panel ---

  // The panel follows GET /events: it resumes after the last revision it
  // read when the stream breaks, and starts again from now when the
  // master no longer keeps that history (410).
  const events = {rev: -1, abort: null, backfilled: false, wake: null, now: false};

  const eventClass = {
    'node.lost': 'bad', 'instance.failed': 'bad', 'instance.exited': 'warn',
    'node.left': 'warn', 'instance.pending': 'warn', 'service.deleted': 'warn', 'instance.removed': 'muted',
    'node.joined': 'ok', 'instance.started': 'ok', 'instance.restarted': 'warn', 'instance.placed': 'muted',
    'service.halted': 'bad', 'service.stopped': 'warn', 'service.updated': 'ok', 'service.restarted': 'ok',
  };

  function nameOf(kind, id) {
    if (!id) return null;
    const name = kind === 'service' ? serviceNames.get(id) : kind === 'node' ? nodeNames.get(id) : '';
    return el('span', {className: 'ref'}, kind + ' ', idCode(id), name ? el('span', {className: 'name', title: name}, ' ' + clip(name, 40)) : null);
  }

  function drawEvent(ev) {
    if (ev.Type === 'node.joined' && ev.Message && ev.Message.startsWith('hostname ')) {
      nodeNames.set(ev.Node, ev.Message.slice(9));
    }
    if (ev.Type === 'node.joined' && ev.Time) nodeJoined.set(ev.Node, ev.Time);
    if (ev.Type === 'service.created' && ev.Message) serviceNames.set(ev.Service, ev.Message);
    const details = [];
    if (ev.PID) details.push(`pid ${ev.PID}`);
    if (ev.ExitCode !== undefined && ev.ExitCode !== null) details.push(`exit ${ev.ExitCode}`);
    if (ev.Restarts) details.push(`restarts ${ev.Restarts}`);
    if (ev.InstanceNum !== undefined && ev.InstanceNum !== null && ev.Type !== 'service.created') details.push(`${ev.InstanceNum} instances`);
    if (ev.Message && !(ev.Type === 'service.created' || (ev.Type === 'node.joined' && ev.Message.startsWith('hostname ')))) details.push(ev.Message);
    if (ev.Type === 'service.created' && ev.InstanceNum !== undefined) details.push(`${ev.InstanceNum} instances`);
    const what = el('td', {className: 'what'}, el('span', {className: 'refs'}, nameOf('service', ev.Service), nameOf('instance', ev.Instance), nameOf('node', ev.Node)));
    const tr = el('tr', {'data-type': ev.Type, 'data-rev': ev.Revision},
      el('td', {}, when(ev.Time)),
      el('td', {}, el('span', {className: 'ev ev-' + (eventClass[ev.Type] || 'muted')}, ev.Type)),
      what,
      el('td', {className: 'details'}, shortIDs(details.join(' · '))));
    const heads = ['When', 'Event', 'What', 'Details'];
    [...tr.cells].forEach((td, i) => td.setAttribute('data-label', heads[i]));
    return tr;
  }

  // A start that failed (no process, so no marker from the slave) becomes
  // a marker line in the log of its service, where it arrives among the
  // lines. Starts and exits come in the log itself, in time order.
  const markers = {
    'instance.failed': 'failed to start',
  };

  function markLog(ev) {
    const what = markers[ev.Type];
    if (!what || !log.abort || ev.Service !== log.service || !ev.Instance) return;
    let text = `instance ${short(ev.Instance)} ${what}`;
    if (ev.ExitCode !== undefined && ev.ExitCode !== null) text += ` (exit ${ev.ExitCode})`;
    if (ev.PID) text += ` · pid ${ev.PID}`;
    if (ev.Node) text += ` · node ${short(ev.Node)}`;
    appendLog([{gap: text, instance: ev.Instance}]);
  }

  function showEvents(batch) {
    if (!batch.length) return;
    const body = $('events').tBodies[0];
    const rows = batch.map(drawEvent).reverse(); // newest first
    body.prepend(...rows);
    while (body.rows.length > MAX_EVENTS) body.lastElementChild.remove();
    $('events').nextElementSibling.hidden = true;
  }

  async function followEvents() {
    let wait = 1000;
    for (;;) {
      const ctl = new AbortController();
      events.abort = ctl;
      let silence = 0;
      const alive = () => {
        clearTimeout(silence);
        silence = setTimeout(() => ctl.abort(), EVENT_SILENCE_MS);
      };
      try {
        let since = events.rev;
        if (!events.backfilled && since < 0) {
          // Learn the current revision, then show the recent history.
          const probe = await call('GET', 'events', {signal: ctl.signal, accept: 'application/x-ndjson', timeout: READ_TIMEOUT_MS});
          const cur = Number(probe.headers.get('Gdpm-Revision'));
          probe.body.cancel();
          events.backfilled = true;
          if (cur >= 0) since = Math.max(cur - EVENT_BACKFILL, 0);
        }
        const path = since >= 0 ? `events?since=${since}` : 'events';
        let res;
        try {
          res = await call('GET', path, {signal: ctl.signal, accept: 'application/x-ndjson', timeout: READ_TIMEOUT_MS});
        } catch (err) {
          if (err.status !== 410) throw err;
          res = await call('GET', 'events', {signal: ctl.signal, accept: 'application/x-ndjson', timeout: READ_TIMEOUT_MS});
          if (events.rev >= 0) showEvents([{Type: 'gap', Time: new Date().toISOString(), Message: 'events were missed while disconnected (the master no longer keeps them)'}]);
        }
        const start = Number(res.headers.get('Gdpm-Revision'));
        if (!isNaN(start)) events.rev = Math.max(events.rev, start);
        $('events-state').textContent = '(live)';
        $('events').classList.remove('disconnected');
        wait = 1000;
        alive();
        let batch = [];
        let flush = 0;
        await lines(res, (ev) => {
          events.rev = Math.max(events.rev, ev.Revision || 0);
          batch.push(ev);
          markLog(ev);
          if (!flush) flush = setTimeout(() => { flush = 0; const b = batch; batch = []; showEvents(b); }, 50);
          soon();
        }, alive);
        clearTimeout(flush);
        showEvents(batch);
      } catch (err) {
        if (err.status === 401) wait = POLL_MS;
      } finally {
        clearTimeout(silence);
      }
      $('events-state').textContent = events.rev >= 0 ? `(disconnected; resumes after revision ${events.rev})` : '(disconnected)';
      $('events').classList.add('disconnected');
      // Wait before trying again, unless the token changes meanwhile.
      if (!events.now) await Promise.race([sleep(wait), new Promise((r) => (events.wake = r))]);
      events.wake = null;
      events.now = false;
      wait = Math.min(wait * 2, 10000);
    }
  }

  function tokenChanged() {
    for (const k of Object.keys(drawn)) delete drawn[k];
    // Reconnect the events with the new token at once.
    events.now = true;
    if (events.abort) events.abort.abort();
    if (events.wake) events.wake();
    refresh();
  }

  // --- actions ---

  let createAttempt = null; // {sig, key}: the last create, while its outcome is unknown

  // newKey is a random Idempotency-Key (crypto.randomUUID needs a secure
  // context; the page may be served over plain HTTP on a loopback address).
  function newKey() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  }

  // act runs one write and shows its outcome next to button; the button
  // stays disabled while the request is out.
  async function act(button, fn) {
    button.disabled = true;
    clearNote(button);
    try {
      await fn();
    } catch (err) {
      let msg = err.message;
      if (err.status === 401) msg = 'Wrong or missing token: set it at the top of the page.';
      else if (err.status === 0) msg = 'No answer from the master (unreachable, or it failed before answering): see the state once it is back.';
      say(button, msg, true);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  function wire() {
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      saveToken($('token').value.trim(), $('remember').checked);
      say($('token-save'), token() ? 'Token set.' : 'Token cleared.');
    });
    $('token-forget').addEventListener('click', (e) => {
      saveToken('', false);
      say(e.currentTarget, 'Token forgotten.');
    });

    $('create-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const b = $('create-submit');
      act(b, async () => {
        const body = {
          Command: $('create-command').value,
          InstanceNum: Number($('create-instances').value),
          Restart: $('create-restart').value,
        };
        const name = $('create-name').value.trim();
        if (name) body.Name = name;
        // A create whose outcome is unknown (no answer, 503, 504) is sent
        // again with the same Idempotency-Key, so it makes one service.
        const sig = JSON.stringify(body);
        if (!createAttempt || createAttempt.sig !== sig) createAttempt = {sig, key: newKey()};
        let id;
        try {
          id = (await (await call('POST', 'service/', {body, extra: {'Idempotency-Key': createAttempt.key}})).text()).trim();
        } catch (err) {
          if ([0, 503, 504].includes(err.status)) {
            err.message = `${err.status ? err.message : 'No answer from the master'}. Create again to retry: it is sent with the same key, so it cannot make two services.`;
            err.status = -1;
          } else {
            createAttempt = null;
          }
          throw err;
        }
        createAttempt = null;
        $('create-command').value = '';
        $('create-name').value = '';
        serviceNames.set(id, name || body.Command);
        say(b, `Created service ${name || short(id)}.`);
        openDetail(id);
      });
    });

    // Opening a service moves the focus to its panel, below the list,
    // so that keyboard and screen reader users land where it opened.
    $('services').tBodies[0].addEventListener('click', (e) => {
      const row = e.target.closest('tr[data-service]');
      if (!row) return;
      openDetail(row.dataset.service);
      $('detail-h').focus();
    });

    $('scale-instances').addEventListener('input', () => (scaleEdited = true));
    $('scale-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const id = selected;
      const n = Number($('scale-instances').value);
      const b = $('scale-submit');
      act(b, async () => {
        await call('POST', servicePath(id), {body: {InstanceNum: n}});
        scaleEdited = false;
        say(b, `Scaled ${short(id)} to ${n}.`);
      });
    });

    // Delete asks for a second click instead of a dialog.
    $('delete').addEventListener('click', (e) => {
      const b = e.currentTarget;
      if (!b.dataset.armed) {
        b.dataset.armed = '1';
        b.textContent = 'Click again to delete';
        deleteTimer = setTimeout(disarmDelete, 4000);
        return;
      }
      disarmDelete();
      const id = selected;
      act(b, async () => {
        await call('DELETE', servicePath(id));
        if (id === selected) closeDetail();
        say($('create-submit'), `Deleted service ${short(id)}; its processes are stopping.`);
      });
    });
    // Stop, start and restart: one POST each; the table shows the rest.
    for (const verb of ['stop', 'start', 'restart']) {
      $(verb).addEventListener('click', (e) => {
        const b = e.currentTarget;
        const id = selected;
        act(b, async () => {
          await call('POST', servicePath(id) + verb + '/');
          const done = {stop: 'Stopping', start: 'Starting', restart: 'Restarting (one instance at a time)'}[verb];
          say(b, `${done} ${serviceNames.get(id) || short(id)}.`);
        });
      });
    }
    $('detail-close').addEventListener('click', () => {
      const id = selected;
      closeDetail();
      // Back to the service's row, where the user came from.
      const b = document.querySelector(`#services button[data-open="${CSS.escape(id)}"]`);
      if (b) b.focus();
    });
    $('log-all').addEventListener('click', () => openLog(selected, ''));

    $('instances').tBodies[0].addEventListener('click', (e) => {
      const b = e.target.closest('button[data-instance]');
      if (b) openLog(selected, b.dataset.instance);
    });
    $('log-close').addEventListener('click', closeLog);
    $('log-pause').addEventListener('click', () => setPaused(!log.paused));
    $('log-filter').addEventListener('change', applyFilter);
  }

  showToken();
  wire();
  refresh();
  followEvents();
  setInterval(tickTimes, 5000);
})();
