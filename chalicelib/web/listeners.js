// Built from client/src/listeners.ts by `npm run build:web` in client/: edit the source, not this file.
// The engine and the poller tell their listeners the same way: subscribe returns the function that stops it.
export class Listeners {
    set = new Set();
    add(listener) {
        this.set.add(listener);
        return () => {
            this.set.delete(listener);
        };
    }
    /** Tell every listener; a copy of the set, so a listener may unsubscribe while it is told. */
    notify(...args) {
        for (const listener of [...this.set])
            listener(...args);
    }
}
