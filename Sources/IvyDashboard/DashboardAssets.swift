// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// The dashboard's page, login form, style and script, served from the binary so that the
/// dashboard works offline and loads nothing from elsewhere.
enum DashboardAssets {
    /// Scripts and styles from this origin only (no inline script: the page's data comes through
    /// `<meta>` tags), and no framing.
    static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

    /// The page of backend `backend`.
    static func page(backend: Int, csrfToken: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="ivy-backend" content="\(backend)">
        <meta name="ivy-csrf" content="\(csrfToken)">
        <title>Ivy dashboard</title>
        <link rel="stylesheet" href="/assets/dashboard.css">
        </head>
        <body>
        <header>
          <h1>Ivy<span> dashboard</span></h1>
          <nav id="backends"></nav>
          <span id="sampled" class="status">connecting…</span>
          <button id="logout" type="button" hidden>Log out</button>
        </header>
        <main>
          <section>
            <h2>Queues <small>messages by state; throughput is calls ended per second, as workers announce it</small></h2>
            <table>
              <thead><tr><th>Queue</th><th class="n">Ready</th><th class="n">Delayed</th><th class="n">Reserved</th>
              <th class="n">Dead</th><th>Throughput</th></tr></thead>
              <tbody id="queues"></tbody>
            </table>
          </section>
          <section>
            <h2>Workers <small id="worker-count"></small></h2>
            <table>
              <thead><tr><th>Name</th><th>Host</th><th class="n">PID</th><th>Queues</th><th class="n">Running</th>
              <th class="n">Succeeded</th><th class="n">Failed</th><th>Started</th><th>Last heard</th><th>Version</th></tr></thead>
              <tbody id="workers"></tbody>
            </table>
          </section>
          <section>
            <h2>Recent failures <small>the latest of each live worker</small></h2>
            <table>
              <thead><tr><th>Time</th><th>Kind</th><th>Task</th><th>Queue</th><th>Call</th><th class="n">Attempt</th>
              <th>Error</th><th>Worker</th></tr></thead>
              <tbody id="failures"></tbody>
            </table>
          </section>
          <section>
            <h2>Dead letters <select id="dead-queue"></select> <span id="message"></span></h2>
            <table>
              <thead><tr><th>Message</th><th>Dead since</th><th class="n">Attempts</th><th>Reason</th><th>Body</th>
              <th></th></tr></thead>
              <tbody id="dead"></tbody>
            </table>
          </section>
          <section id="lookup-section" hidden>
            <h2>Find a call <small>by the id its producer got</small></h2>
            <form id="lookup" class="lookup"><input id="task-id" placeholder="call id" autocomplete="off">
            <button class="primary" type="submit">Look up</button></form>
            <div id="status-result"></div>
          </section>
        </main>
        <script src="/assets/dashboard.js"></script>
        </body>
        </html>

        """
    }

    /// The login form, with `message` (fixed text, never the request's) above it.
    static func loginPage(message: String?) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Ivy dashboard: log in</title>
        <link rel="stylesheet" href="/assets/dashboard.css">
        </head>
        <body>
        <main class="login">
          <section>
            <h2>Ivy dashboard</h2>
            <p class="\(message == nil ? "note" : "error")">\(message ?? "Give the dashboard's token (the first line of its --token-file).")</p>
            <form method="post" action="/login">
              <input type="password" name="token" autocomplete="current-password" autofocus required>
              <button class="primary" type="submit">Log in</button>
            </form>
          </section>
        </main>
        </body>
        </html>

        """
    }

    static let css = #"""
        :root { --ink: #1d2433; --muted: #667085; --line: #e4e7ec; --panel: #ffffff; --back: #f5f6f8;
          --accent: #2f6f4f; --warn: #b54708; --bad: #b42318; --good: #067647; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
          background: var(--back); }
        header { display: flex; align-items: center; gap: 16px; padding: 10px 24px; background: var(--ink); color: #fff; }
        header h1 { margin: 0; font-size: 18px; letter-spacing: .5px; }
        header h1 span { color: #8fd19e; }
        header nav { display: flex; gap: 6px; flex-wrap: wrap; }
        header nav a { color: #cfd4dc; text-decoration: none; padding: 4px 10px; border-radius: 6px; font-size: 13px; }
        header nav a.current { background: #3a4358; color: #fff; }
        header .status { margin-left: auto; font-size: 12px; color: #cfd4dc; }
        header .status.stale { color: #fda29b; }
        header form { margin: 0; }
        main { padding: 18px 24px; display: grid; gap: 18px; max-width: 1400px; }
        section { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
        section h2 { margin: 0 0 10px; font-size: 15px; display: flex; gap: 10px; align-items: baseline; }
        section h2 small { color: var(--muted); font-weight: normal; font-size: 12px; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { font-size: 12px; color: var(--muted); font-weight: 600; }
        td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
        tr:last-child td { border-bottom: none; }
        .empty { color: var(--muted); font-style: italic; }
        .badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px; background: #fef0c7;
          color: var(--warn); margin-left: 6px; }
        .dead { color: var(--bad); font-weight: 600; }
        .rate { color: var(--muted); font-size: 12px; margin-left: 6px; }
        svg.spark { vertical-align: middle; }
        svg.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; }
        svg.spark line { stroke: var(--line); stroke-width: 1; }
        button { font: inherit; font-size: 12px; padding: 3px 10px; border-radius: 6px; border: 1px solid #d0d5dd;
          background: #fff; cursor: pointer; }
        button:hover { background: #f2f4f7; }
        button.danger { color: var(--bad); border-color: #fda29b; }
        button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
        code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
        pre { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 6em; overflow: auto; }
        .error { color: var(--bad); }
        .kind-failed, .kind-deadLettered { color: var(--bad); }
        .kind-retried { color: var(--warn); }
        .lookup { display: flex; gap: 8px; margin-bottom: 10px; }
        .lookup input, .login input { flex: 1; max-width: 420px; padding: 5px 8px; border: 1px solid #d0d5dd;
          border-radius: 6px; font: inherit; }
        dl.status { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0; }
        dl.status dt { color: var(--muted); }
        dl.status dd { margin: 0; }
        .state-succeeded { color: var(--good); font-weight: 600; }
        .state-failed, .state-dead-lettered, .state-cancelled { color: var(--bad); font-weight: 600; }
        .login { max-width: 420px; margin: 12vh auto; }
        .login form { display: flex; gap: 8px; }
        .note { color: var(--muted); font-size: 12px; }
        #message { min-height: 1.2em; font-size: 12px; }

        """#

    static let script = #"""
        // Ivy dashboard: polls /api/backends/N every second and draws what it answers. Everything is
        // built with DOM calls and textContent, never HTML from data, so a task name or an error text
        // cannot inject markup; the page's Content-Security-Policy allows this file alone as script.
        'use strict';

        const backendIndex = Number(document.querySelector('meta[name="ivy-backend"]').content);
        const csrfToken = document.querySelector('meta[name="ivy-csrf"]').content;
        const state = { report: null, deadQueue: null, deadCount: null, deadListedAt: 0, deadListing: 0, pendingDelete: null };

        function el(tag, attributes, ...children) {
          const node = document.createElement(tag);
          for (const [name, value] of Object.entries(attributes || {})) {
            if (value !== undefined && value !== null) node.setAttribute(name, value);
          }
          for (const child of children) {
            if (child !== undefined && child !== null) node.append(child instanceof Node ? child : String(child));
          }
          return node;
        }

        function number(value) { return value === null || value === undefined ? '–' : value.toLocaleString('en'); }

        function ago(milliseconds) {
          const seconds = Math.max(0, Math.round((Date.now() - milliseconds) / 1000));
          if (seconds < 60) return seconds + ' s ago';
          if (seconds < 3600) return Math.round(seconds / 60) + ' min ago';
          if (seconds < 86400) return Math.round(seconds / 3600) + ' h ago';
          return Math.round(seconds / 86400) + ' d ago';
        }

        function time(milliseconds) { return new Date(milliseconds).toLocaleTimeString('en-GB'); }

        function say(text, isError) {
          const message = document.getElementById('message');
          message.textContent = text;
          message.className = isError ? 'error' : 'note';
        }

        function sparkline(values) {
          const width = 120, height = 24, ns = 'http://www.w3.org/2000/svg';
          const svg = document.createElementNS(ns, 'svg');
          svg.setAttribute('class', 'spark');
          svg.setAttribute('width', width);
          svg.setAttribute('height', height);
          svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
          const base = document.createElementNS(ns, 'line');
          for (const [name, value] of [['x1', 0], ['y1', height - 1], ['x2', width], ['y2', height - 1]]) {
            base.setAttribute(name, value);
          }
          svg.append(base);
          if (values.length > 1) {
            const top = Math.max(...values, 1);
            // The server keeps 60 samples: a short history starts at the right, as it grows.
            const step = width / (Math.max(values.length, 60) - 1);
            const start = width - step * (values.length - 1);
            const points = values.map((value, i) =>
              `${(start + i * step).toFixed(1)},${(height - 2 - (value / top) * (height - 4)).toFixed(1)}`);
            const line = document.createElementNS(ns, 'polyline');
            line.setAttribute('points', points.join(' '));
            svg.append(line);
          }
          return svg;
        }

        function fill(id, rows, emptyText, columns) {
          const body = document.getElementById(id);
          body.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: columns, class: 'empty' }, emptyText))]));
        }

        function drawBackends(report) {
          const nav = document.getElementById('backends');
          nav.replaceChildren(...report.backends.map((backend) => el('a', {
            href: '/backends/' + backend.index,
            class: backend.index === backendIndex ? 'current' : null,
          }, backend.endpoint)));
          document.title = 'Ivy · ' + report.backend.endpoint;
        }

        function drawQueues(report) {
          const rows = report.queues.map((queue) => {
            const rate = queue.throughput.length ? queue.throughput[queue.throughput.length - 1] : 0;
            const name = el('td', { class: 'name' }, el('code', {}, queue.name));
            if (queue.paused) name.append(el('span', { class: 'badge' }, 'paused'));
            if (queue.error) name.append(el('div', { class: 'error' }, queue.error));
            const dead = el('button', { class: 'show-dead', 'data-queue': queue.name, type: 'button' }, number(queue.dead));
            dead.addEventListener('click', () => selectDeadQueue(queue.name));
            return el('tr', { 'data-queue': queue.name }, name,
              el('td', { class: 'n ready' }, number(queue.ready)),
              el('td', { class: 'n delayed' }, report.backend.distinguishesStates ? number(queue.delayed) : '–'),
              el('td', { class: 'n reserved' }, report.backend.distinguishesStates ? number(queue.reserved) : '–'),
              el('td', { class: 'n dead' + (queue.dead ? ' dead' : '') }, dead),
              el('td', { class: 'throughput' }, sparkline(queue.throughput),
                el('span', { class: 'rate' }, rate.toFixed(1) + '/s')));
          });
          fill('queues', rows, 'No queue yet: start a worker, or name queues with --queues.', 6);
          const select = document.getElementById('dead-queue');
          const names = report.queues.map((queue) => queue.name);
          if (select.options.length !== names.length || names.some((name, i) => select.options[i].value !== name)) {
            select.replaceChildren(...names.map((name) => el('option', { value: name }, name)));
            if (state.deadQueue && names.includes(state.deadQueue)) select.value = state.deadQueue;
          }
          if (!state.deadQueue && names.length) selectDeadQueue(names[0]);
          // Listed again when the count changes, at most every 3 s: on RabbitMQ a listing takes the
          // dead letters and gives them back, which moves the count while it runs.
          const shown = report.queues.find((queue) => queue.name === state.deadQueue);
          if (shown && shown.dead !== state.deadCount && Date.now() - state.deadListedAt > 3000) loadDeadLetters();
        }

        function drawWorkers(report) {
          const count = document.getElementById('worker-count');
          count.textContent = !report.presence ? 'the notifier does not keep workers\u2019 presence'
            : report.workersError ? `${report.workers.length} \u00b7 ${report.workersError}` : `${report.workers.length} alive`;
          count.className = report.workersError ? 'error' : '';
          const workers = [...report.workers].sort((a, b) => a.name.localeCompare(b.name));
          fill('workers', workers.map((worker) => el('tr', { 'data-worker': worker.id },
            el('td', {}, el('code', {}, worker.name)),
            el('td', {}, worker.host), el('td', { class: 'n' }, worker.pid),
            el('td', {}, worker.queues.join(', ')),
            el('td', { class: 'n running' }, `${worker.running} / ${worker.concurrency}`),
            el('td', { class: 'n' }, number(worker.succeeded)), el('td', { class: 'n' }, number(worker.failed)),
            el('td', {}, ago(worker.startedAt)), el('td', {}, ago(worker.announcedAt)),
            el('td', { class: 'note' }, worker.version))), 'No worker has announced itself.', 10);
        }

        function drawFailures(report) {
          fill('failures', report.failures.map((failure) => el('tr', {},
            el('td', {}, time(failure.at)),
            el('td', { class: 'kind-' + failure.kind }, failure.kind),
            el('td', {}, el('code', {}, failure.task || '(unread)')),
            el('td', {}, failure.queue),
            el('td', {}, el('code', {}, failure.taskID)),
            el('td', { class: 'n' }, failure.attempt || ''),
            el('td', {}, el('pre', {}, failure.error)),
            el('td', {}, failure.worker))), 'No failure lately.', 8);
        }

        // An error answer's text: its JSON's `error`, else its status.
        async function errorOf(response) {
          try { return (await response.json()).error || response.statusText; } catch { return response.statusText; }
        }

        async function poll() {
          const status = document.getElementById('sampled');
          try {
            const response = await fetch('/api/backends/' + backendIndex, { credentials: 'same-origin' });
            if (response.status === 401) { location.href = '/login'; return; }
            if (!response.ok) throw new Error(await errorOf(response));
            const report = await response.json();
            state.report = report;
            drawBackends(report);
            drawQueues(report);
            drawWorkers(report);
            drawFailures(report);
            document.getElementById('lookup-section').hidden = !report.statuses;
            document.getElementById('logout').hidden = !report.needsLogin;
            status.textContent = 'sampled ' + time(report.sampledAt);
            status.className = 'status';
          } catch (error) {
            status.textContent = 'cannot reach the dashboard: ' + error.message;
            status.className = 'status stale';
          }
        }

        function selectDeadQueue(name) {
          state.deadQueue = name;
          state.deadCount = null;
          document.getElementById('dead-queue').value = name;
          loadDeadLetters();
        }

        // Lists the chosen queue's dead letters; of listings that cross, the latest asked is shown.
        async function loadDeadLetters() {
          const queue = state.deadQueue;
          if (!queue) return;
          const listing = ++state.deadListing;
          state.deadListedAt = Date.now();
          const report = state.report && state.report.queues.find((entry) => entry.name === queue);
          state.deadCount = report ? report.dead : null;
          let letters;
          try {
            const response = await fetch(`/api/backends/${backendIndex}/dead?queue=${encodeURIComponent(queue)}`,
              { credentials: 'same-origin' });
            if (!response.ok) { say('dead letters: ' + await errorOf(response), true); return; }
            letters = await response.json();
          } catch (error) {
            say('dead letters: ' + error.message, true);
            return;
          }
          if (listing !== state.deadListing || queue !== state.deadQueue) return;
          fill('dead', letters.map((letter) => {
            const requeue = el('button', { class: 'requeue primary', type: 'button', 'data-id': letter.id }, 'Requeue');
            requeue.addEventListener('click', () => change('requeue', queue, letter.id));
            // The confirmation outlives a redraw of the table, so what the button says is what a click does.
            const remove = el('button', { class: 'delete danger', type: 'button', 'data-id': letter.id },
              state.pendingDelete === letter.id ? 'Really delete?' : 'Delete');
            remove.addEventListener('click', () => {
              // A second click confirms: a dialog would stop the page's polling while it is open.
              if (state.pendingDelete !== letter.id) {
                state.pendingDelete = letter.id;
                for (const other of document.querySelectorAll('#dead button.delete')) other.textContent = 'Delete';
                remove.textContent = 'Really delete?';
                return;
              }
              change('delete', queue, letter.id);
            });
            return el('tr', { 'data-id': letter.id },
              el('td', {}, el('code', {}, letter.id)),
              el('td', {}, time(letter.deadLetteredAt)),
              el('td', { class: 'n' }, letter.attempts),
              el('td', {}, el('pre', {}, letter.reason)),
              el('td', {}, el('pre', { title: letter.sealed ? 'sealed' : '' }, letter.body),
                letter.truncated ? el('span', { class: 'note' }, 'cut: see ivy queue dead --json') : null),
              el('td', {}, requeue, ' ', remove));
          }), `No dead letter in ${queue}.`, 6);
        }

        async function change(action, queue, id) {
          state.pendingDelete = null;
          try {
            const response = await fetch(`/api/backends/${backendIndex}/dead/${action}`, {
              method: 'POST', credentials: 'same-origin',
              headers: { 'Content-Type': 'application/json', 'X-Ivy-CSRF': csrfToken },
              body: JSON.stringify({ queue, id }),
            });
            if (response.ok) say(`${action === 'requeue' ? 'Requeued' : 'Deleted'} ${id} of ${queue}.`, false);
            else say(`${action} ${id}: ${await errorOf(response)}`, true);
          } catch (error) {
            say(`${action} ${id}: ${error.message}`, true);
          }
          await loadDeadLetters();
          await poll();
        }

        async function lookUp(event) {
          event.preventDefault();
          const id = document.getElementById('task-id').value.trim();
          const result = document.getElementById('status-result');
          if (!id) return;
          let status;
          try {
            const response = await fetch('/api/tasks?id=' + encodeURIComponent(id), { credentials: 'same-origin' });
            if (!response.ok) { result.replaceChildren(el('p', { class: 'error' }, await errorOf(response))); return; }
            status = await response.json();
          } catch (error) {
            result.replaceChildren(el('p', { class: 'error' }, error.message));
            return;
          }
          const rows = [['state', el('span', { class: 'state-' + status.state }, status.state)], ['task', status.task],
            ['queue', status.queue], ['attempt', status.attempt], ['worker', status.worker],
            ['updated', status.updatedAt && new Date(status.updatedAt).toISOString()],
            ['due', status.runAt && new Date(status.runAt).toISOString()], ['reason', status.reason],
            ['result', status.result && el('code', {}, status.result)],
            ['cancel asked', status.cancelRequested ? 'yes' : null]];
          result.replaceChildren(el('dl', { class: 'status' }, ...rows.filter(([, value]) => value !== null &&
            value !== undefined).flatMap(([name, value]) => [el('dt', {}, name), el('dd', {}, value)])));
        }

        document.getElementById('dead-queue').addEventListener('change', (event) => selectDeadQueue(event.target.value));
        document.getElementById('lookup').addEventListener('submit', lookUp);
        document.getElementById('logout').addEventListener('click', async () => {
          await fetch('/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-Ivy-CSRF': csrfToken } });
          location.href = '/login';
        });
        poll();
        setInterval(poll, 1000);

        """#
}
