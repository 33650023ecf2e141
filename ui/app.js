// gdpm's web interface: polls the master's HTTP API and drives it with the
// same routes and token as the CLI. Plain DOM, no framework, no build step.
'use strict';

(() => {
  const POLL_MS = 1500;
  const MAX_LOG_LINES = 2000;
  const TOKEN_KEY = 'gdpm.token';
  // The API lives beside /ui/, also when the master is mounted under a prefix.
  const API = new URL('../', location.href);

  const $ = (id) => document.getElementById(id);

  let selected = ''; // the service in the detail panel
  let scaleEdited = false; // the user is typing a count: do not overwrite it
  let logAbort = null; // ends the followed log
  let pollTimer = 0;
  let polling = false;
  let pollAgain = false;
  const drawn = {}; // table id -> the rows last drawn, as JSON

  // --- the token ---

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY) || '';
  }

  function saveToken(value, remember) {
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
    if (value) (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, value);
    showToken();
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

  // call sends one request and returns the response, or throws an APIError
  // carrying the master's {"error": "..."} message.
  async function call(method, path, {body, signal, accept = 'application/json'} = {}) {
    const headers = {Accept: accept};
    const t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    const init = {method, headers, signal, cache: 'no-store'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(new URL(path, API), init);
    } catch (err) {
      if (signal && signal.aborted) throw err;
      throw new APIError(0, 'master unreachable');
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
    return `${res.status} ${res.statusText}`;
  }

  const getJSON = async (path) => (await call('GET', path)).json();
  const servicePath = (id) => `service/${encodeURIComponent(id)}/`;

  // --- drawing ---

  // el builds an element; strings become text, never markup.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    e.append(...children.map((c) => (c instanceof Node ? c : String(c ?? ''))));
    return e;
  }

  const short = (id) => (id ? id.slice(0, 8) : '');
  const idCell = (id) => el('td', {}, el('code', {title: id}, short(id)));

  function when(iso) {
    if (!iso || iso.startsWith('0001-')) return '';
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  // fill redraws the body of table id from rows, unless they are what is
  // shown already, and shows the table's "empty" note when there are none.
  function fill(id, rows, draw) {
    const table = $(id);
    const key = JSON.stringify(rows);
    if (drawn[id] === key) return;
    drawn[id] = key;
    table.tBodies[0].replaceChildren(...rows.map(draw));
    table.hidden = rows.length === 0;
    const empty = table.nextElementSibling;
    if (empty && empty.classList.contains('empty')) empty.hidden = rows.length > 0;
  }

  function setConn(ok, text) {
    const c = $('conn');
    c.textContent = text;
    c.classList.toggle('err', !ok);
  }

  let messageTimer = 0;
  function say(text, isError) {
    const m = $('message');
    m.textContent = text;
    m.classList.toggle('err', !!isError);
    m.hidden = false;
    clearTimeout(messageTimer);
    if (!isError) messageTimer = setTimeout(() => (m.hidden = true), 5000);
  }

  function drawNodes(n) {
    const status = {1: 'online', 2: 'draining'};
    const rows = n.Ids.map((id, i) => ({id, status: n.Status[i], services: n.ServiceNum[i], time: n.Times[i]}));
    $('node-count').textContent = `(${rows.length})`;
    fill('nodes', rows, (r) => el('tr', {},
      el('td', {}, el('code', {}, r.id)),
      el('td', {}, el('span', {className: 'state state-' + (status[r.status] || 'unknown')}, status[r.status] || r.status)),
      el('td', {className: 'num'}, r.services),
      el('td', {}, r.time)));
  }

  function drawServices(list) {
    $('service-count').textContent = `(${list.length})`;
    const rows = list.map((s) => ({...s, selected: s.ID === selected}));
    fill('services', rows, (s) => {
      const running = `${s.Running} / ${s.InstanceNum}` + (s.Pending ? ` (${s.Pending} pending)` : '');
      return el('tr', {'data-service': s.ID, className: s.selected ? 'selected' : '', tabIndex: 0},
        idCell(s.ID),
        el('td', {className: 'cmd'}, el('code', {title: s.Command}, s.Command)),
        el('td', {className: 'num'}, running),
        el('td', {}, s.Restart),
        el('td', {}, when(s.CreatedAt)));
    });
  }

  function drawDetail(d) {
    $('detail-id').textContent = d.ID;
    $('detail-command').textContent = d.Command;
    $('detail-summary').textContent =
      `${d.Running} of ${d.InstanceNum} running` + (d.Pending ? `, ${d.Pending} pending` : '') +
      ` · restart ${d.Restart} · stop timeout ${d.StopTimeout}`;
    const scale = $('scale-instances');
    if (!scaleEdited && document.activeElement !== scale) scale.value = d.InstanceNum;
    fill('instances', d.Instances, (i) => {
      let outcome = i.Error || '';
      if (i.ExitCode !== undefined && i.ExitCode !== null) outcome = `exit ${i.ExitCode}` + (outcome ? `: ${outcome}` : '');
      return el('tr', {'data-state': i.State},
        idCell(i.ID),
        idCell(i.Node),
        el('td', {}, el('span', {className: 'state state-' + i.State}, i.State)),
        el('td', {className: 'num'}, i.PID || ''),
        el('td', {className: 'num'}, i.Restarts),
        el('td', {}, when(i.StartedAt)),
        el('td', {className: 'outcome'}, outcome),
        el('td', {}, el('button', {type: 'button', className: 'log', disabled: !i.Node, 'data-instance': i.ID}, 'Log')));
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
      setConn(true, 'connected · ' + new Date().toLocaleTimeString());
      $('token-form').classList.remove('needed');
    } catch (err) {
      if (err.status === 401) {
        setConn(false, 'token needed');
        $('token-form').classList.add('needed');
      } else {
        setConn(false, err.message);
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
    }
    selected = id;
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

  // --- logs ---

  function openLog(service, instance) {
    closeLog();
    const ctl = new AbortController();
    logAbort = ctl;
    $('log').hidden = false;
    $('log-title').textContent = `${short(service)} / ${short(instance)}`;
    $('log-lines').replaceChildren();
    setLogState('following');
    followLog(service, instance, ctl.signal);
  }

  function closeLog() {
    if (logAbort) logAbort.abort();
    logAbort = null;
    $('log').hidden = true;
  }

  function setLogState(text, isError) {
    const s = $('log-state');
    s.textContent = text;
    s.classList.toggle('err', !!isError);
  }

  // followLog reads the NDJSON stream of one instance's lines until it ends
  // or signal aborts it; empty lines are the master's heartbeats.
  async function followLog(service, instance, signal) {
    const q = new URLSearchParams({instance, tail: '200', follow: '1'});
    try {
      const res = await call('GET', `${servicePath(service)}logs/?${q}`, {signal, accept: 'application/x-ndjson'});
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let rest = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        const lines = (rest + value).split('\n');
        rest = lines.pop();
        appendLog(lines);
      }
      appendLog([rest]);
      if (!signal.aborted) setLogState('stream ended');
    } catch (err) {
      if (!signal.aborted) setLogState(err.message, true);
    }
  }

  function appendLog(lines) {
    const pre = $('log-lines');
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    for (const raw of lines) {
      if (!raw.trim()) continue;
      let l;
      try {
        l = JSON.parse(raw);
      } catch (_) {
        continue;
      }
      pre.append(el('span', {className: l.Stream === 'stderr' ? 'stderr' : ''}, l.Line + '\n'));
    }
    while (pre.childNodes.length > MAX_LOG_LINES) pre.firstChild.remove();
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }

  // --- actions ---

  // act runs one write and shows its outcome; the button stays disabled
  // while the request is out.
  async function act(button, fn) {
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      say(err.status === 401 ? 'Wrong or missing token: set it above.' : err.message, true);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  function wire() {
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      saveToken($('token').value.trim(), $('remember').checked);
      for (const k of Object.keys(drawn)) delete drawn[k];
      refresh();
    });
    $('token-forget').addEventListener('click', () => {
      saveToken('', false);
      refresh();
    });

    $('create-form').addEventListener('submit', (e) => {
      e.preventDefault();
      act($('create-submit'), async () => {
        const body = {
          Command: $('create-command').value,
          InstanceNum: Number($('create-instances').value),
          Restart: $('create-restart').value,
        };
        const id = (await (await call('POST', 'service/', {body})).text()).trim();
        $('create-command').value = '';
        say(`Created service ${id}.`);
        openDetail(id);
      });
    });

    $('services').tBodies[0].addEventListener('click', (e) => {
      const row = e.target.closest('tr[data-service]');
      if (row) openDetail(row.dataset.service);
    });
    $('services').tBodies[0].addEventListener('keydown', (e) => {
      const row = e.target.closest('tr[data-service]');
      if (row && e.key === 'Enter') openDetail(row.dataset.service);
    });

    $('scale-instances').addEventListener('input', () => (scaleEdited = true));
    $('scale-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const id = selected;
      const n = Number($('scale-instances').value);
      act($('scale-submit'), async () => {
        await call('POST', servicePath(id), {body: {InstanceNum: n}});
        scaleEdited = false;
        say(`Scaled ${short(id)} to ${n}.`);
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
        say(`Deleted service ${short(id)}; its processes are stopping.`);
      });
    });
    $('detail-close').addEventListener('click', closeDetail);

    $('instances').tBodies[0].addEventListener('click', (e) => {
      const b = e.target.closest('button[data-instance]');
      if (b) openLog(selected, b.dataset.instance);
    });
    $('log-close').addEventListener('click', closeLog);
  }

  showToken();
  wire();
  refresh();
})();
