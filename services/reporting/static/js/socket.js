// A WebSocket that comes back: on a drop it reconnects after 1, 2, 4 ... 30 s (with jitter) and says so.

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

/**
 * new ReconnectingSocket(url, {onFrame, onState}).open(); onState gets ("connecting" | "open" |
 * "reconnecting" | "closed", {retryAt}) and onFrame the parsed JSON of every text frame.
 */
export class ReconnectingSocket {
  constructor(url, { onFrame, onState }) {
    this.url = url;
    this.onFrame = onFrame;
    this.onState = onState;
    this.ws = null;
    this.timer = null;
    this.failures = 0;
    this.stopped = true;
  }

  open() {
    this.stopped = false;
    this.connect();
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "closed by the page");
    this.ws = null;
    this.onState("closed", {});
  }

  connect() {
    this.onState(this.failures ? "reconnecting" : "connecting", {});
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.failures = 0;
      this.onState("open", {});
    });
    ws.addEventListener("message", (event) => this.receive(event));
    ws.addEventListener("close", () => this.dropped(ws));
  }

  receive(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (e) {
      return; // not a frame of ours
    }
    this.onFrame(frame);
  }

  dropped(ws) {
    if (ws !== this.ws || this.stopped) return;
    this.ws = null;
    this.failures += 1;
    const delay = this.delay();
    this.onState("reconnecting", { retryAt: Date.now() + delay });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  delay() {
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (this.failures - 1));
    return Math.round(base * (0.8 + Math.random() * 0.4)); // jitter: screens do not all come back at once
  }
}
