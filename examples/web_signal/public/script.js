// The web-signal page: one WebSocket, a form that sends {message} on it, and a list of every
// message received. Plain JavaScript, no libraries.
//
// Where the WebSocket is comes from GET /ws-config: {"port": <number> | null, "path": "/messages"}.
// A null port means the page's own origin (HTTP and WebSocket share a port); otherwise it is
// this page's host name with that port. wss: when the page came over https.
(() => {
  'use strict';

  const form = document.getElementById('bc-form');
  const input = form.elements.message;
  const button = form.querySelector('input[type="submit"]');
  const list = document.getElementById('messages');
  const status = document.getElementById('status');
  const statusText = document.getElementById('status-text');
  const curl = document.getElementById('curl');

  let ws = null;
  let retryDelay = 500;

  if (curl) {
    curl.textContent = `curl -d message=hi ${location.origin}/broadcast`;
  }

  function setStatus(state, text) {
    status.dataset.state = state;
    statusText.textContent = text;
    button.disabled = state !== 'connected';
  }

  async function socketUrl() {
    const response = await fetch('/ws-config', { cache: 'no-store' });
    if (!response.ok) {
      throw new Error(`GET /ws-config: ${response.status}`);
    }
    const config = await response.json();
    const secure = config.scheme === 'wss' || location.protocol === 'https:';
    const scheme = secure ? 'wss:' : 'ws:';
    const host = config.port == null ? location.host : hostWithPort(location.hostname, config.port);
    const path = typeof config.path === 'string' && config.path.startsWith('/') ? config.path : '/';
    return `${scheme}//${host}${path}`;
  }

  function hostWithPort(hostname, port) {
    // location.hostname drops an IPv6 address's brackets; a URL needs them back.
    const bracketed = hostname.includes(':') && !hostname.startsWith('[');
    return `${bracketed ? `[${hostname}]` : hostname}:${port}`;
  }

  // What a signal shows: the Message of a JSON object that has one, else the raw text.
  function display(text) {
    try {
      const value = JSON.parse(text);
      if (value !== null && typeof value === 'object' && 'Message' in value) {
        const message = value.Message;
        return typeof message === 'string' ? message : JSON.stringify(message);
      }
    } catch (_) {
      // not JSON: shown as it is
    }
    return text;
  }

  function append(text) {
    const item = document.createElement('li');
    item.className = 'message';
    const time = document.createElement('time');
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
    const body = document.createElement('span');
    body.textContent = text;
    item.append(time, body);
    // The list scrolls inside its own height: it follows new messages while it is scrolled
    // to its end, and leaves a reader of older ones where they are.
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
    list.append(item);
    if (atEnd) {
      list.scrollTop = list.scrollHeight;
    }
  }

  function retry(reason) {
    ws = null;
    const seconds = Math.round(retryDelay / 100) / 10;
    setStatus('disconnected', `disconnected (${reason}); retrying in ${seconds} s`);
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  }

  async function connect() {
    setStatus('connecting', 'connecting…');
    let url;
    try {
      url = await socketUrl();
    } catch (error) {
      retry(error.message);
      return;
    }
    const socket = new WebSocket(url);
    socket.onopen = () => {
      ws = socket;
      retryDelay = 500;
      setStatus('connected', `connected to ${url}`);
    };
    socket.onmessage = (event) => {
      if (typeof event.data === 'string') {
        append(display(event.data));
      }
    };
    socket.onclose = (event) => {
      retry(event.code === 1006 ? 'connection lost' : `closed with ${event.code}`);
    };
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const message = input.value;
    if (!ws || ws.readyState !== WebSocket.OPEN || message === '') {
      return;
    }
    ws.send(JSON.stringify({ message }));
    input.value = '';
    input.focus();
  });

  connect();
})();
