// How long the client waits between tries. The defaults are the product's; createClient({ timing }) changes any
// of them (tests shorten them; a page may too).

export interface Timing {
  /** Waits before the 2nd..6th try of a step that failed on the network or a 5xx; then the failure is reported. */
  readonly retryDelaysMs: readonly number[];
  /** An API request with no answer for this long is given up as a network error (and so retried). */
  readonly requestTimeoutMs: number;
  /** A PUT that makes no progress for this long is aborted and retried. */
  readonly stallMs: number;
  /** The processing screen polls after pollStartMs, each wait pollFactor times the last, at most pollMaxMs. */
  readonly pollStartMs: number;
  readonly pollFactor: number;
  readonly pollMaxMs: number;
  /** While the job is being processed, it is polled every pollProcessingMs (its progress moves). */
  readonly pollProcessingMs: number;
  /**
   * A finished job's links to its preview and model are asked for afresh this long after they came, or sooner
   * when a link says it lasts less (its X-Amz-Expires): a page left open still shows the model.
   */
  readonly linkRefreshMs: number;
}

export const DEFAULT_TIMING: Timing = Object.freeze({
  retryDelaysMs: Object.freeze([1000, 2000, 4000, 8000, 16000]),
  requestTimeoutMs: 30000,
  stallMs: 30000,
  pollStartMs: 2000,
  pollFactor: 1.5,
  pollMaxMs: 30000,
  pollProcessingMs: 1500,
  // The API's links last 15 minutes (RESULT_LINK_SECONDS in app.py): ask again well before.
  linkRefreshMs: 12 * 60 * 1000,
});

/** The defaults with `overrides` applied (unknown keys and undefined values are ignored). */
export function resolveTiming(overrides: Partial<Timing> = {}): Timing {
  const timing: { -readonly [K in keyof Timing]: Timing[K] } = { ...DEFAULT_TIMING };
  for (const key of Object.keys(DEFAULT_TIMING) as (keyof Timing)[]) {
    const value = overrides[key];
    if (value !== undefined) (timing as Record<keyof Timing, unknown>)[key] = value;
  }
  return Object.freeze(timing);
}
