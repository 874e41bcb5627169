/** The public types of the private Tor network (see torNetwork.ts for the API). */
export const AUTHORITY_ROLES = ['authority0', 'authority1', 'authority2'] as const;
export const RELAY_ROLES = [...AUTHORITY_ROLES, 'relay', 'exit'] as const;
export const TOR_ROLES = [...RELAY_ROLES, 'client', 'onionService'] as const;
export type TorRole = (typeof TOR_ROLES)[number];
export type RelayRole = (typeof RELAY_ROLES)[number];

export interface OnionTarget {
  /** Local port on `host` the service forwards to. */
  localPort: number;
  /** Port of the onion address (default 80). */
  virtualPort?: number;
  /** Local host (default 127.0.0.1). */
  host?: string;
}

export interface AddOnionOptions {
  virtualPort?: number;
  host?: string;
  /**
   * When addOnion resolves: 'uploaded' (default) once the descriptor reached an HSDir —
   * a client can then fetch it; 'reachable' also opens (and at once closes) one TCP
   * connection to the onion through the client, which reaches the local port; 'none'
   * right after ADD_ONION.
   */
  waitFor?: 'uploaded' | 'reachable' | 'none';
  timeoutMs?: number;
}

export interface StartTorNetworkOptions {
  /** Directory in which a fresh `tornet-*` directory holds the data dirs, kept after stop
   * (tor logs: `<role>/notice.log`). Default: a fresh `llmtor-tornet-*` directory under
   * os.tmpdir(), removed on stop. */
  baseDir?: string;
  /** Publish this local port as an onion service at start (virtual port 80). */
  onionTargetPort?: number;
  /** More onion services to publish at start. */
  onionTargets?: Array<number | OnionTarget>;
  /** Progress messages. */
  log?: (s: string) => void;
  /** Bound for the whole start (default 60 000 ms). */
  timeoutMs?: number;
  /** Where generated authority keys are cached; `false` disables the cache. */
  keyCacheDir?: string | false;
  torPath?: string;
  torGencertPath?: string;
  /** Keep a temporary data dir after stop (also: env LLMTOR_TORNET_KEEP=1). */
  keepDataDir?: boolean;
  /** Address of the relays' ORPorts and the authorities' DirPorts (default 127.0.0.1), e.g. an
   * address on a bridge so that tor instances in pods can join; control and SOCKS ports stay
   * on 127.0.0.1. Must be an address of this machine. */
  relayAddress?: string;
  /** Wait for a fetch through the exit before resolving (default true); onion-only users may skip it. */
  exitProbe?: boolean;
  /** One-way delay (ms) added to every link between two tor processes, for realistic
   * latency (default 0: none). Each relay then listens on a private ORPort and advertises
   * one served by a delaying forwarder in this process. A hop costs 2 × this per round trip. */
  hopDelayMs?: number;
  /** Extra random delay per chunk, uniform in [0, hopJitterMs] ms (default 0); byte order is kept. */
  hopJitterMs?: number;
}

export interface CircuitHopInfo {
  fingerprint: string;
  nickname?: string;
  /** Role in this network, if the relay is one of ours. */
  role?: RelayRole;
}

export interface StreamCircuit {
  streamId: string;
  circuitId: string;
  /** Target the application asked for, e.g. `127.0.0.1:8080` or `abc….onion:80`. */
  target: string;
  /** Target in the SUCCEEDED event (exit streams: `127.0.0.1.<exit fp>.exit:8080`). */
  rawTarget: string;
  /** Circuit purpose: `GENERAL`, or `CONFLUX_LINKED` when tor's conflux (on by default
   * for exit traffic since 0.4.8) joined it with a second leg; `HS_CLIENT_REND` for onions. */
  purpose: string;
  /** The hops of the circuit the stream was attached to (first = guard). */
  hops: CircuitHopInfo[];
  /** Conflux set id, when the circuit is a conflux leg. */
  confluxId?: string;
  /** Every circuit that can carry the stream's data: all legs of the conflux set, or just
   * the one circuit. Data may flow over any leg; each ends at the same exit. */
  legs: Array<{ circuitId: string; hops: CircuitHopInfo[] }>;
  socksUsername?: string;
  socksPassword?: string;
  /** All KEY=VALUE fields of the circuit-status line. */
  circuitFields: Record<string, string>;
  /** All KEY=VALUE fields of the STREAM event. */
  streamFields: Record<string, string>;
}

export interface StreamFilter {
  /** Matches the stream target (`host:port`); a string must equal it. */
  target?: string | RegExp;
  timeoutMs?: number;
}

export interface StreamWatcher {
  /** The next SUCCEEDED stream (buffered since the watcher started) matching the filter. */
  next(filter?: StreamFilter): Promise<StreamCircuit>;
  /** Every SUCCEEDED stream seen so far. */
  readonly seen: readonly StreamCircuit[];
  close(): void;
}

export interface PeerOwner {
  pid: number;
  /** The network role of that process, or 'other' (e.g. the test process itself). */
  role: TorRole | 'other';
}

export interface TorNetworkTimings {
  /** From start to every authority holding every relay's descriptor. */
  descriptorsMs: number;
  /** From start to an authority's consensus listing every relay. */
  consensusMs: number;
  /** From start to the client's bootstrap at 100 %. */
  bootstrapMs: number;
  /** From start to the first successful fetch through the exit. */
  exitReadyMs: number;
  /** From start to the upload of each start-time onion (by address). */
  onionReadyMs: Record<string, number>;
  /** Whether the authority keys came from the cache. */
  keysCached: boolean;
}

export interface OnionInfo {
  address: string;
  localPort: number;
  virtualPort: number;
}

export interface TorNetwork {
  readonly socksPort: number;
  readonly controlPort: number;
  readonly cookiePath: string;
  readonly onionControlPort: number;
  readonly onionCookiePath: string;
  readonly exitFingerprint: string;
  readonly fingerprints: Readonly<Record<RelayRole, string>>;
  readonly nicknames: Readonly<Record<RelayRole, string>>;
  readonly pids: Readonly<Record<TorRole, number>>;
  readonly dataDirs: Readonly<Record<TorRole, string>>;
  readonly baseDir: string;
  /** Onions published at start, in the order given. */
  readonly onions: readonly OnionInfo[];
  /** The first start-time onion, if any. */
  readonly onionAddress: string | undefined;
  readonly timings: TorNetworkTimings;
  /** The `DirAuthority` torrc lines of this network, for extra tor processes that join it
   * (with `TestingTorNetwork 1`), e.g. onion services run outside this harness. */
  readonly dirAuthorityLines: readonly string[];
  /** With `hopDelayMs`: the delay in force and the connections each relay's forwarder accepted. */
  readonly hopDelay: { delayMs: number; jitterMs: number; connections(): Record<RelayRole, number> } | undefined;
  socksUrl(isolationKey?: string): string;
  addOnion(localPort: number, opts?: AddOnionOptions): Promise<string>;
  removeOnion(address: string): Promise<void>;
  roleOfFingerprint(fingerprint: string): RelayRole | undefined;
  watchStreams(): Promise<StreamWatcher>;
  traceStream<T>(action: () => Promise<T>, filter?: StreamFilter): Promise<{ result: T; circuit: StreamCircuit }>;
  ownerOfPeerPort(peerPort: number, serverPort?: number): PeerOwner | undefined;
  logTail(role: TorRole, lines?: number): string;
  readonly stopped: boolean;
  stop(): Promise<void>;
}
