// The engine and the poller tell their listeners the same way: subscribe returns the function that stops it.

export class Listeners<Listener extends (...args: never[]) => void> {
  private readonly set = new Set<Listener>();

  add(listener: Listener): () => void {
    this.set.add(listener);
    return () => {
      this.set.delete(listener);
    };
  }

  /** Tell every listener; a copy of the set, so a listener may unsubscribe while it is told. */
  notify(...args: Parameters<Listener>): void {
    for (const listener of [...this.set]) listener(...args);
  }
}
