// A Web Storage stand-in for Node (which has no localStorage), optionally refusing writes.

export class MemoryStorage {
  constructor({ refuseWrites = false } = {}) {
    this.items = new Map();
    this.refuseWrites = refuseWrites;
  }

  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }

  setItem(key, value) {
    if (this.refuseWrites) throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
    this.items.set(key, String(value));
  }

  removeItem(key) {
    this.items.delete(key);
  }
}

/** Install fresh storages on globalThis; `local: null` makes reading localStorage itself throw. */
export function installStorages({ local = new MemoryStorage(), session = new MemoryStorage() } = {}) {
  Object.defineProperty(globalThis, "localStorage", {
    configurable: true,
    get() {
      if (local === null) throw new DOMException("Access is denied for this document.", "SecurityError");
      return local;
    },
  });
  Object.defineProperty(globalThis, "sessionStorage", { configurable: true, get: () => session });
  return { local, session };
}
