// Test doubles: Web Storage for Node, a scripted API client, and photo bytes.

import {
  ApiError, createClient, type Confirmed, type JobStatus, type UploadClient, type UploadCreated,
} from "../src/index.js";

/** A job's status as GET /api/upload/{id} answers it (a confirmed job1), with `fields` changed. */
export function jobStatus(status: JobStatus["status"], fields: Partial<JobStatus> = {}): JobStatus {
  return { jobId: "job1", status, fileType: "image/jpeg", fileSize: 10, createdAt: "2026-11-28T18:00:00Z",
    confirmedAt: "2026-11-28T18:00:05Z", updatedAt: "2026-11-28T18:00:05Z", attempt: 1, progress: null,
    previewUrl: null, resultUrl: null, errorMessage: null, resultsDeletedAt: null, ...fields };
}

export class MemoryStorage implements Storage {
  readonly items = new Map<string, string>();
  constructor(private readonly refuseWrites = false) {}
  get length(): number {
    return this.items.size;
  }
  clear(): void {
    this.items.clear();
  }
  key(index: number): string | null {
    return [...this.items.keys()][index] ?? null;
  }
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    if (this.refuseWrites) throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
    this.items.set(key, String(value));
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
}

/** Fresh storages on globalThis; `local: null` makes reading localStorage itself throw. */
export function installStorages({ local = new MemoryStorage() as MemoryStorage | null,
  session = new MemoryStorage() as MemoryStorage | null } = {}): { local: MemoryStorage | null; session: MemoryStorage | null } {
  Object.defineProperty(globalThis, "localStorage", {
    configurable: true,
    get() {
      if (local === null) throw new DOMException("Access is denied for this document.", "SecurityError");
      return local;
    },
  });
  Object.defineProperty(globalThis, "sessionStorage", { configurable: true, get: () => session ?? undefined });
  return { local, session };
}

export function removeStorages(): void {
  Reflect.deleteProperty(globalThis, "localStorage");
  Reflect.deleteProperty(globalThis, "sessionStorage");
}

/** The first bytes of a JPEG, padded to `size` bytes. */
export function jpeg(size = 1234, name = "photo.jpg", type = "image/jpeg"): File {
  const bytes = new Uint8Array(size);
  bytes.set([0xff, 0xd8, 0xff, 0xe0]);
  return new File([bytes], name, { type });
}

/** An ISO-BMFF HEIC, as an iPhone gives it: often with an empty type. */
export function heic(size = 1234, name = "IMG_0001.HEIC"): File {
  const bytes = new Uint8Array(size);
  bytes.set([0, 0, 0, 24, ..."ftypheic".split("").map((c) => c.charCodeAt(0)), 0, 0, 0, 0,
    ..."mif1heic".split("").map((c) => c.charCodeAt(0))]);
  return new File([bytes], name, { type: "" });
}

type Outcome<T> = T | Error | ((arg: unknown) => T | Promise<T>) | "ok";

export interface Calls {
  create: { body: unknown; key: string | undefined }[];
  put: { url: string; type: string; size: number }[];
  confirm: { id: string; token: string | null | undefined }[];
  cancel: { id: string; token: string | null | undefined }[];
}

/** A client whose calls take the next outcome of their list ("ok" when it runs out; an Error is thrown). */
export function scriptedClient({ create = [], confirm = [], onConfirm, timing }: {
  create?: Outcome<UploadCreated>[];
  confirm?: Outcome<Confirmed>[];
  onConfirm?: (signal: AbortSignal | undefined) => Promise<void>;
  timing?: Parameters<typeof createClient>[0]["timing"];
} = {}): { client: UploadClient; calls: Calls } {
  const calls: Calls = { create: [], put: [], confirm: [], cancel: [] };
  let jobs = 0;
  const next = async <T>(list: Outcome<T>[], arg: unknown, made: () => T): Promise<T> => {
    const outcome = list.length ? list.shift() : "ok";
    if (outcome instanceof Error) throw outcome;
    if (typeof outcome === "function") return (outcome as (arg: unknown) => T)(arg);
    return outcome === "ok" || outcome === undefined ? made() : outcome;
  };
  const base = createClient({ baseUrl: "", timing: { retryDelaysMs: [0, 0, 0, 0, 0], stallMs: 1000, ...timing } });
  const client: UploadClient = {
    ...base,
    createUpload: async (body, options) => {
      calls.create.push({ body, key: options?.idempotencyKey });
      return next(create, body, () => {
        jobs += 1;
        return { uploadId: `job${jobs}`, uploadUrl: `https://storage/url${jobs}`, key: `uploads/job${jobs}/original.jpg`,
          sessionToken: `token${jobs}`, expiresAt: new Date(Date.now() + 900000).toISOString() };
      });
    },
    confirmUpload: async (id, options) => {
      calls.confirm.push({ id, token: options?.token });
      if (onConfirm) await onConfirm(options?.signal);
      return next<Confirmed>(confirm, id, () => ({ success: true, jobId: id, status: "pending" }));
    },
    cancelUpload: async (id, options) => {
      calls.cancel.push({ id, token: options?.token });
    },
    getJob: async () => {
      throw new ApiError(500, "INTERNAL_ERROR", "not scripted");
    },
    limits: async () => ({ maxUploadBytes: 20971520, fileTypes: ["image/jpeg", "image/png", "image/webp", "image/heic"] }),
  };
  return { client, calls };
}

/** A PUT that takes the next outcome of its list and records each call. */
export function scriptedPut(calls: Calls, outcomes: (Error | "ok")[] = []) {
  return async ({ url, contentType, file, onProgress }: { url: string; contentType: string; file: Blob;
    onProgress: (percent: number) => void }): Promise<void> => {
    calls.put.push({ url, type: contentType, size: file.size });
    const outcome = outcomes.shift() ?? "ok";
    if (outcome instanceof Error) throw outcome;
    onProgress(50);
    onProgress(100);
  };
}

export const net = (): ApiError => new ApiError(0, "NETWORK_ERROR", "offline");
