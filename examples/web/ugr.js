// The JavaScript API of ugr's WebAssembly engine (ugr-wasm): open an exported artifact from
// its bytes and recommend for a history, with scores and confidence. No dependencies; a
// classic script (<script src="ugr.js">) that defines `Ugr`, `UgrModel` and `UgrError`.
//
//   const ugr = await Ugr.load("ugr_wasm.wasm");       // or Ugr.fromBytes(wasmBytes), synchronous
//   const model = ugr.open(new Uint8Array(await (await fetch("model.ugr")).arrayBuffer()));
//   const { items } = model.recommend([12, 7, 3], { k: 10, beam: 20 });
//   // items: [{ item, score, confidence }, ...], best first
//   model.recommend([12, 7, 3], { deny: [5, 9], prefixes: ["<a_3>"] }); // rules inside the search
//   model.setAvailable([44, 45], false);                              // out of stock, live

class UgrError extends Error {}

class Ugr {
  /** Instantiates the module at `url` (a .wasm built from ugr-wasm). */
  static async load(url) {
    const bytes = await (await fetch(url)).arrayBuffer();
    const { instance } = await WebAssembly.instantiate(bytes, {});
    return new Ugr(instance.exports);
  }

  /** Instantiates the module from its bytes, synchronously (modules under 8 MB). */
  static fromBytes(bytes) {
    return new Ugr(new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports);
  }

  constructor(exports) {
    this.x = exports;
  }

  /** The text of the last output (`len` bytes; negative = an error message). */
  output(len) {
    const n = Math.abs(len);
    const bytes = new Uint8Array(this.x.memory.buffer, this.x.ugr_output_ptr(), n);
    return new TextDecoder().decode(bytes.slice());
  }

  /** Copies `bytes` (a Uint8Array) into module memory, runs `f(ptr, len)`, frees it. */
  withBytes(bytes, f) {
    const ptr = this.x.ugr_alloc(bytes.length);
    new Uint8Array(this.x.memory.buffer, ptr, bytes.length).set(bytes);
    try {
      return f(ptr, bytes.length);
    } finally {
      this.x.ugr_free(ptr, bytes.length);
    }
  }

  /** Opens an artifact (the bytes of a .ugr file from `ugr export`). */
  open(bytes) {
    const handle = this.withBytes(bytes, (p, n) => this.x.ugr_open(p, n));
    if (handle < 0) throw new UgrError(this.output(handle));
    return new UgrModel(this, handle);
  }
}

class UgrModel {
  constructor(ugr, handle) {
    this.ugr = ugr;
    this.handle = handle;
  }

  /**
   * Recommends for `history` (item ids, most recent last). Business rules are enforced inside
   * the search: `allow` (only these items; an empty array is an error), `deny` (never these),
   * `prefixes` (only items whose SID starts with one of these, e.g. "<a_3>" or "<a_3><b_12>").
   */
  recommend(history, { k = 10, beam = 20, excludeHistory = false, allow = null, deny = [], prefixes = [] } = {}) {
    const u32 = (v) => new Uint8Array(Uint32Array.from(v).buffer);
    const x = this.ugr.x;
    const len = this.ugr.withBytes(u32(history), (h, hn) =>
      this.ugr.withBytes(u32(allow ?? []), (a, an) =>
        this.ugr.withBytes(u32(deny), (d, dn) =>
          this.ugr.withBytes(new TextEncoder().encode(prefixes.join(" ")), (p, pn) =>
            x.ugr_recommend_rules(this.handle, h, hn / 4, k, beam, excludeHistory ? 1 : 0,
              allow === null ? 0 : 1, a, an / 4, d, dn / 4, p, pn),
          ),
        ),
      ),
    );
    const text = this.ugr.output(len);
    if (len < 0) throw new UgrError(text);
    return JSON.parse(text);
  }

  /** Marks `items` available (true) or out of stock (false) as one batch; returns how many changed. */
  setAvailable(items, available) {
    const bytes = new Uint8Array(Uint32Array.from(items).buffer);
    const len = this.ugr.withBytes(bytes, (p, n) => this.ugr.x.ugr_set_available(this.handle, p, n / 4, available ? 1 : 0));
    if (len < 0) throw new UgrError(this.ugr.output(len));
    return len;
  }

  /** The catalog's item ids. */
  items() {
    const len = this.ugr.x.ugr_items(this.handle);
    const text = this.ugr.output(len);
    if (len < 0) throw new UgrError(text);
    return JSON.parse(text);
  }

  close() {
    this.ugr.x.ugr_close(this.handle);
  }
}

globalThis.Ugr = Ugr;
globalThis.UgrModel = UgrModel;
globalThis.UgrError = UgrError;
