// One WebSocket that comes back: after a drop it reconnects in 0.5, 1, 2 ... 15 s (±20% jitter, so a
// restarted server is not hit by every page at once). Nothing here knows about a page: the agent desk,
// the customer chat and the supervisor page use it (served at /lib/socket.js by agents, intake and
// reporting).
//
//   const socket = new ReconnectingSocket({url, onFrame, onState, check, onGiveUp, checkAfter});
//   socket.start(); socket.stop(); socket.send(object); socket.resetBackoff();
//
// url() is asked on every attempt; onFrame gets each text frame's parsed JSON object; onState gets
// ("connecting", {attempt}) or ("closed", {delay}) before a retry. When the socket would not even open
// (on attempt `checkAfter` or later, default 1: twice in a row), check() is awaited: it resolves to a reason to give up (then onGiveUp(reason)), or
// to nothing to go on retrying. The backoff restarts only when resetBackoff() is called (the caller
// decides what proves the feed works), or on start().

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

export class ReconnectingSocket {
  constructor({ url, onFrame, onState, check = async () => null, onGiveUp = () => {}, checkAfter = 1 }) {
    Object.assign(this, { url, onFrame, onState, check, onGiveUp, checkAfter });
    this.ws = null;
    this.generation = 0;  // bumped by every attempt and by stop(): events of an older socket are ignored
    this.attempt = 0;
    this.retryTimer = null;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  stop(reason) {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.retryTimer);
    if (this.ws) { try { this.ws.close(1000, reason); } catch (e) { /* already closed */ } this.ws = null; }
  }

  // Retry at once (the agent asked, or the browser is back online) unless a socket is open or opening.
  reconnectNow() {
    if (!this.stopped && !this.ws) this.connect();
  }

  resetBackoff() { this.attempt = 0; }

  get isOpen() { return !!this.ws && this.ws.readyState === WebSocket.OPEN; }

  send(frame) { this.ws.send(JSON.stringify(frame)); }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const gen = ++this.generation;
    this.onState("connecting", { attempt: this.attempt });
    let ws, opened = false;
    try { ws = new WebSocket(this.url()); } catch (e) { this.scheduleRetry(gen, false); return; }
    this.ws = ws;
    ws.onopen = () => { opened = true; };
    ws.onmessage = (event) => {
      if (gen !== this.generation) return;
      let frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame && typeof frame === "object") this.onFrame(frame);
    };
    ws.onerror = () => { /* a close event follows */ };
    ws.onclose = () => {
      if (gen !== this.generation) return;
      this.ws = null;
      this.scheduleRetry(gen, opened);
    };
  }

  async scheduleRetry(gen, wasOpen) {
    if (this.stopped || gen !== this.generation) return;
    if (!wasOpen && this.attempt >= this.checkAfter) {
      // The socket would not open: find out whether retrying can help (a key or an agent gone cannot).
      const giveUp = await this.check();
      if (gen !== this.generation) return;
      if (giveUp) { this.onGiveUp(giveUp); return; }
      if (this.stopped) return;
    }
    const delay = Math.round(Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt) * (0.8 + Math.random() * 0.4));
    this.attempt++;
    this.onState("closed", { delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
