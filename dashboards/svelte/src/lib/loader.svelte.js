// The loading state of one widget: loading, ready, empty or error, with the last good data kept
// on screen while a new range loads (so charts redraw instead of flashing).

/** @typedef {'loading' | 'ready' | 'empty' | 'error'} LoadStatus */

/** @template T */
export class Loader {
  /** @type {LoadStatus} */
  status = $state('loading');
  /** @type {T | null} */
  data = $state.raw(null);
  /** @type {unknown} */
  error = $state.raw(null);

  /** @type {AbortController | null} */
  #controller = null;
  /** @type {[(signal: AbortSignal) => Promise<T>, (data: T) => boolean] | null} */
  #last = null;

  /**
   * Starts a load, cancelling the one in flight.
   * @param {(signal: AbortSignal) => Promise<T>} fetcher
   * @param {(data: T) => boolean} [isEmpty]
   */
  load(fetcher, isEmpty = () => false) {
    this.#controller?.abort();
    const controller = new AbortController();
    this.#controller = controller;
    this.#last = [fetcher, isEmpty];
    this.status = 'loading';
    fetcher(controller.signal).then(
      (data) => {
        if (controller.signal.aborted) return;
        this.data = data;
        this.error = null;
        this.status = isEmpty(data) ? 'empty' : 'ready';
      },
      (error) => {
        if (controller.signal.aborted) return;
        this.error = error;
        this.data = null;
        this.status = 'error';
      },
    );
  }

  /** Repeats the last load (the "Try again" button). */
  reload() {
    if (this.#last) this.load(...this.#last);
  }

  /** Cancels the load in flight (on unmount). */
  abort() {
    this.#controller?.abort();
  }
}
