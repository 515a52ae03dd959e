// blindfold's browser client for two-server mode (an ES module, no build step).
//
// It does what `blindfold query` does: greets both servers, checks they serve
// halves of one split (P0 first, P1 second), encodes the input in fixed point,
// secret-shares it (P0 gets a 16-byte seed, P1 the input minus the seed's
// expansion) and adds the two output shares. The seed expansion is the Rust
// `Prg` bit for bit: keystream block i is AES-128_seed(i as 16 little-endian
// bytes), computed with WebCrypto (AES-CTR over one block whose counter is
// that block). Messages are the servers' framed byte stream (u32 little-endian
// length, then the payload), carried in WebSocket binary messages.

const MAGIC = [0x42, 0x46, 0x53, 0x56]; // "BFSV"
const VERSION = 3;
const T_HELLO_CLIENT = 0x01;
const T_MODEL_INFO = 0x10;
const T_QUERY = 0x20;
const T_REPLY_OK = 0x30;
const T_REPLY_ERR = 0x31;
const SHARE_SEED = 1;
const SHARE_VALUES = 2;
const MASK64 = (1n << 64n) - 1n;

/** A WebSocket carrying length-prefixed frames. */
class FramedSocket {
  constructor(url) {
    this.url = url;
    this.buf = new Uint8Array(0);
    this.waiting = null;
    this.error = null;
    this.bytes = 0;
  }

  open(timeoutMs) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      ws.binaryType = "arraybuffer";
      const timer = setTimeout(() => reject(new Error(`${this.url}: no answer`)), timeoutMs);
      ws.onopen = () => { clearTimeout(timer); resolve(); };
      ws.onerror = () => {
        clearTimeout(timer);
        this.fail(new Error(`${this.url}: connection failed`));
        reject(this.error);
      };
      ws.onclose = () => this.fail(new Error(`${this.url}: connection closed`));
      ws.onmessage = (ev) => {
        const chunk = new Uint8Array(ev.data);
        this.bytes += chunk.length;
        const b = new Uint8Array(this.buf.length + chunk.length);
        b.set(this.buf);
        b.set(chunk, this.buf.length);
        this.buf = b;
        this.deliver();
      };
      this.ws = ws;
    });
  }

  fail(e) {
    if (!this.error) this.error = e;
    this.deliver();
  }

  deliver() {
    if (!this.waiting) return;
    if (this.buf.length >= 4) {
      const len = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(0, true);
      if (this.buf.length >= 4 + len) {
        const msg = this.buf.slice(4, 4 + len);
        this.buf = this.buf.slice(4 + len);
        const w = this.waiting;
        this.waiting = null;
        w.resolve(msg);
        return;
      }
    }
    if (this.error) {
      const w = this.waiting;
      this.waiting = null;
      w.reject(this.error);
    }
  }

  send(payload) {
    const f = new Uint8Array(4 + payload.length);
    new DataView(f.buffer).setUint32(0, payload.length, true);
    f.set(payload, 4);
    this.bytes += f.length;
    this.ws.send(f);
  }

  recv(timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        reject(new Error(`${this.url}: timed out`));
      }, timeoutMs);
      this.waiting = {
        resolve: (m) => { clearTimeout(timer); resolve(m); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      this.deliver();
    });
  }

  close() {
    if (this.ws) this.ws.close();
  }
}

/** A little-endian reader over one message. */
class Reader {
  constructor(bytes, what) {
    this.b = bytes;
    this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
    this.what = what;
  }
  need(n) {
    if (this.pos + n > this.b.length) throw new Error(`${this.what}: truncated`);
  }
  u8() { this.need(1); return this.b[this.pos++]; }
  u32() { this.need(4); const x = this.v.getUint32(this.pos, true); this.pos += 4; return x; }
  u64() { this.need(8); const x = this.v.getBigUint64(this.pos, true); this.pos += 8; return x; }
  f64() { this.need(8); const x = this.v.getFloat64(this.pos, true); this.pos += 8; return x; }
  text() {
    const n = this.u32();
    this.need(n);
    const s = new TextDecoder().decode(this.b.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  values() {
    const n = this.u32();
    this.need(8 * n);
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u64();
    return out;
  }
  open(tag) {
    const v = this.u8();
    if (v !== VERSION) throw new Error(`${this.what}: protocol version ${v}, this page speaks ${VERSION}`);
    const t = this.u8();
    if (t === T_REPLY_ERR) {
      const code = this.u8();
      throw new Error(`server refused (code ${code}): ${this.text()}`);
    }
    if (t !== tag) throw new Error(`${this.what}: unexpected message 0x${t.toString(16)}`);
  }
  done() {
    if (this.pos !== this.b.length) throw new Error(`${this.what}: ${this.b.length - this.pos} trailing bytes`);
  }
}

class Writer {
  constructor(tag) { this.parts = [VERSION, tag]; }
  u8(x) { this.parts.push(x); return this; }
  bytes(b) { for (const x of b) this.parts.push(x); return this; }
  u32(x) { return this.bytes([x & 255, (x >>> 8) & 255, (x >>> 16) & 255, (x >>> 24) & 255]); }
  u64(x) {
    for (let i = 0n; i < 8n; i++) this.parts.push(Number((x >> (8n * i)) & 255n));
    return this;
  }
  finish() { return Uint8Array.from(this.parts); }
}

function decodeModelInfo(msg) {
  const r = new Reader(msg, "model info");
  r.open(T_MODEL_INFO);
  const info = { name: r.text(), party: r.u8(), modelId: r.text() };
  const dims = r.u8();
  info.inputShape = [];
  for (let i = 0; i < dims; i++) info.inputShape.push(Number(r.u64()));
  info.fracBits = r.u32();
  info.outputFracBits = r.u32();
  info.outputLen = Number(r.u64());
  info.ready = Number(r.u64());
  r.done();
  info.inputLen = info.inputShape.reduce((a, b) => a * b, 1);
  return info;
}

function decodeReply(msg) {
  const r = new Reader(msg, "reply");
  r.open(T_REPLY_OK);
  const cost = {
    offlineMs: r.f64(), offlineBytes: r.u64(), onlineMs: r.f64(),
    onlineBytes: r.u64(), onlineRounds: r.u64(), queueMs: r.f64(),
  };
  const output = r.values();
  r.done();
  return { cost, output };
}

/** `n` u64 values of the Rust `Prg` seeded with `seed` (16 bytes). */
export async function expandSeed(seed, n) {
  const key = await crypto.subtle.importKey("raw", seed, { name: "AES-CTR" }, false, ["encrypt"]);
  const blocks = Math.ceil((8 * n) / 16);
  const zero = new Uint8Array(16);
  const jobs = [];
  for (let i = 0; i < blocks; i++) {
    const counter = new Uint8Array(16);
    let c = i;
    for (let j = 0; j < 6 && c > 0; j++) { counter[j] = c & 255; c = Math.floor(c / 256); }
    jobs.push(crypto.subtle.encrypt({ name: "AES-CTR", counter, length: 128 }, key, zero));
  }
  const out = await Promise.all(jobs);
  const stream = new Uint8Array(16 * blocks);
  out.forEach((b, i) => stream.set(new Uint8Array(b), 16 * i));
  const v = new DataView(stream.buffer);
  const vals = new Array(n);
  for (let i = 0; i < n; i++) vals[i] = v.getBigUint64(8 * i, true);
  return vals;
}

/** Fixed point as the Rust engine encodes a float32 input: round half away from zero. */
export function encodeFixed(x, frac) {
  const s = Math.fround(x) * 2 ** frac;
  const r = Math.sign(s) * Math.floor(Math.abs(s) + 0.5);
  return BigInt.asUintN(64, BigInt(r));
}

function decodeFixed(v, frac) {
  return Number(BigInt.asIntN(64, v)) / 2 ** frac;
}

function random16() {
  return crypto.getRandomValues(new Uint8Array(16));
}

/**
 * Query two servers (WebSocket URLs of P0 and P1) with `input` (numbers in
 * the model's order). Returns { label, scores, ring, info, latencyMs, bytes, cost }.
 */
export async function queryTwoServers(urls, input, { timeoutMs = 30000 } = {}) {
  const t0 = performance.now();
  const socks = urls.map((u) => new FramedSocket(u));
  try {
    await Promise.all(socks.map((s) => s.open(timeoutMs)));
    const hello = Uint8Array.from([...MAGIC, VERSION, T_HELLO_CLIENT]);
    socks.forEach((s) => s.send(hello));
    const infos = [];
    for (const s of socks) infos.push(decodeModelInfo(await s.recv(timeoutMs)));
    if (infos[0].party !== 0 || infos[1].party !== 1) {
      throw new Error(`the servers are P${infos[0].party} and P${infos[1].party}: give P0 first, P1 second`);
    }
    if (infos[0].modelId !== infos[1].modelId) {
      throw new Error("the two servers hold shares of different splits");
    }
    const info = infos[0];
    if (input.length !== info.inputLen) {
      throw new Error(`input has ${input.length} values, the model takes ${info.inputLen}`);
    }
    const x = input.map((v) => encodeFixed(v, info.fracBits));
    const seed = random16();
    const x0 = await expandSeed(seed, x.length);
    const x1 = x.map((v, i) => (v - x0[i]) & MASK64);
    const id = random16();
    const q0 = new Writer(T_QUERY).bytes(id).u8(0).u8(SHARE_SEED).bytes(seed).finish();
    const w1 = new Writer(T_QUERY).bytes(id).u8(0).u8(SHARE_VALUES).u32(x1.length);
    x1.forEach((v) => w1.u64(v));
    socks[0].send(q0);
    socks[1].send(w1.finish());
    const replies = [];
    for (const s of socks) replies.push(decodeReply(await s.recv(timeoutMs)));
    for (const r of replies) {
      if (r.output.length !== info.outputLen) {
        throw new Error(`a server sent ${r.output.length} outputs, the model has ${info.outputLen}`);
      }
    }
    const ring = replies[0].output.map((v, i) => (v + replies[1].output[i]) & MASK64);
    const scores = ring.map((v) => decodeFixed(v, info.outputFracBits));
    let label = 0;
    ring.forEach((v, i) => {
      if (BigInt.asIntN(64, v) > BigInt.asIntN(64, ring[label])) label = i;
    });
    return {
      label, scores, ring, info,
      latencyMs: performance.now() - t0,
      bytes: socks.reduce((a, s) => a + s.bytes, 0),
      cost: replies.map((r) => r.cost),
    };
  } finally {
    socks.forEach((s) => s.close());
  }
}
