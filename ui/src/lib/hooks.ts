import { useCallback, useEffect, useRef, useState } from "react";
import type { LifecycleEvent } from "./types";

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
  setData: (update: (current: T | null) => T | null) => void;
}

/** Load ``fetcher()`` when ``key`` changes; ``reload`` fetches again (keeping the data shown). */
export function useLoad<T>(fetcher: () => Promise<T>, key: string): Loaded<T> {
  const [data, setDataState] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const fetchRef = useRef(fetcher);
  fetchRef.current = fetcher;
  const lastKey = useRef(key);
  useEffect(() => {
    let live = true;
    if (lastKey.current !== key) {
      setDataState(null);
      lastKey.current = key;
    }
    setLoading(true);
    fetchRef.current().then(
      (value) => {
        if (!live) return;
        setDataState(value);
        setError(null);
        setLoading(false);
      },
      (exc: Error) => {
        if (!live) return;
        setError(exc.message);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const setData = useCallback((update: (current: T | null) => T | null) => setDataState(update), []);
  return { data, error, loading, reload, setData };
}

export type Connection = "connecting" | "live" | "offline";

/** Lifecycle events from the WebSocket /v1/events (reconnecting with backoff). While it
 * is not connected, ``onTick`` is called every few seconds so pages can poll instead. */
export function useEvents(onEvent: (event: LifecycleEvent) => void, onTick?: () => void): Connection {
  const [state, setState] = useState<Connection>("connecting");
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const ticker = useRef(onTick);
  ticker.current = onTick;
  useEffect(() => {
    let socket: WebSocket | null = null;
    let stopped = false;
    let retry: number | undefined;
    let delay = 500;
    const connect = () => {
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${window.location.host}/v1/events?filter=%23`);
      socket.onopen = () => {
        delay = 500;
        setState("live");
        ticker.current?.(); // catch up on what happened while connecting
      };
      socket.onmessage = (message) => {
        try {
          handler.current(JSON.parse(String(message.data)) as LifecycleEvent);
        } catch {
          /* not an event */
        }
      };
      socket.onclose = () => {
        if (stopped) return;
        setState("offline");
        retry = window.setTimeout(connect, delay);
        delay = Math.min(delay * 2, 10_000);
      };
    };
    connect();
    const poll = window.setInterval(() => {
      if (socket?.readyState !== WebSocket.OPEN) ticker.current?.();
    }, 3000);
    return () => {
      stopped = true;
      window.clearTimeout(retry);
      window.clearInterval(poll);
      socket?.close();
    };
  }, []);
  return state;
}

/** ``fn`` at most once per ``ms`` (trailing call kept). */
export function useThrottled(fn: () => void, ms: number): () => void {
  const ref = useRef(fn);
  ref.current = fn;
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => () => window.clearTimeout(timer.current), []);
  return useCallback(() => {
    if (timer.current !== undefined) return;
    timer.current = window.setTimeout(() => {
      timer.current = undefined;
      ref.current();
    }, ms);
  }, [ms]);
}

/** The current time (seconds), ticking while ``active``. */
export function useNow(active: boolean, ms = 1000): number {
  const [now, setNow] = useState(() => Date.now() / 1000);
  useEffect(() => {
    if (!active) return;
    const id = window.setInterval(() => setNow(Date.now() / 1000), ms);
    return () => window.clearInterval(id);
  }, [active, ms]);
  return now;
}
