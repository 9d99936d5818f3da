/** A small typed event emitter; on() returns the function that removes the listener. */
export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  private listeners: { [K in keyof Events]?: Set<(value: Events[K]) => void> } = {};

  on<K extends keyof Events>(name: K, listener: (value: Events[K]) => void): () => void {
    (this.listeners[name] ??= new Set()).add(listener);
    return () => this.off(name, listener);
  }

  off<K extends keyof Events>(name: K, listener: (value: Events[K]) => void): void {
    this.listeners[name]?.delete(listener);
  }

  /** Calls every listener of name; one that throws does not stop the others. */
  protected emit<K extends keyof Events>(name: K, value: Events[K]): void {
    const set = this.listeners[name];
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(value);
      } catch (err) {
        // A listener's bug must not break the stream or the queue; report it
        // where the platform reports uncaught errors.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}
