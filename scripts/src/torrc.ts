/**
 * The torrc of each role of the private Tor network (see FACTS.md, "Private Tor network on
 * loopback", for why each option is there).
 */
import path from 'node:path';
import type { AuthorityKeys } from './torAuthorityKeys.js';
import { AUTHORITY_ROLES, type RelayRole, type TorRole } from './torNetworkTypes.js';

export const NICKNAMES: Record<RelayRole, string> = {
  authority0: 'auth0',
  authority1: 'auth1',
  authority2: 'auth2',
  relay: 'relay',
  exit: 'exit',
};

export interface Ports {
  /** The ORPort each relay advertises (and listens on, unless `orListen` says otherwise). */
  or: Record<RelayRole, number>;
  /** Where a relay listens when its advertised ORPort is served by someone else (a delaying
   * forwarder): `ORPort <or> NoListen` + `ORPort <orListen> NoAdvertise`. */
  orListen?: Record<RelayRole, number>;
  dir: Record<(typeof AUTHORITY_ROLES)[number], number>;
  control: Record<TorRole, number>;
  socks: number;
}

/** Voting: intervals of this many seconds (see startTorNetwork for the first vote). */
export const VOTING_INTERVAL = 20;

export class Torrc {
  readonly dirAuthorityLines: string[];
  private readonly logLevel: string;

  constructor(
    private readonly ports: Ports,
    private readonly relayAddress: string,
    private readonly keys: readonly AuthorityKeys[],
  ) {
    this.dirAuthorityLines = AUTHORITY_ROLES.map((role, k) => {
      const key = keys[k]!;
      return `DirAuthority ${key.nickname} orport=${ports.or[role]} no-v2 v3ident=${key.v3ident} ${relayAddress}:${ports.dir[role]} ${key.fingerprint}`;
    });
    const envLevel = process.env['LLMTOR_TORNET_LOGLEVEL'] ?? '';
    this.logLevel = /^(debug|info|notice|warn|err)$/.test(envLevel) ? envLevel : 'notice';
  }

  private common(role: TorRole, dataDir: string): string[] {
    return [
      'TestingTorNetwork 1',
      `DataDirectory ${dataDir}`,
      `Log ${this.logLevel} file ${path.join(dataDir, 'notice.log')}`,
      'GeoIPFile ""',
      'GeoIPv6File ""',
      `ControlPort 127.0.0.1:${this.ports.control[role]}`,
      'CookieAuthentication 1',
      'ShutdownWaitLength 0',
      'ClientUseIPv6 0',
      `__OwningControllerProcess ${process.pid}`,
      ...this.dirAuthorityLines,
    ];
  }

  private relay(role: RelayRole): string[] {
    const a = this.relayAddress;
    const listen = this.ports.orListen?.[role];
    return [
      `Nickname ${NICKNAMES[role]}`,
      ...(listen === undefined
        ? [`ORPort ${a}:${this.ports.or[role]}`]
        : [`ORPort ${a}:${this.ports.or[role]} NoListen`, `ORPort ${a}:${listen} NoAdvertise`]),
      `Address ${a}`,
      'AssumeReachable 1',
      'SocksPort 0',
    ];
  }

  /** `startOffset`: TestingV3AuthVotingStartOffset, placing the first vote. */
  authority(role: (typeof AUTHORITY_ROLES)[number], dataDir: string, startOffset: number): string {
    const hsdirs = this.keys.map((k) => k.fingerprint).join(',');
    return [
      ...this.common(role, dataDir),
      ...this.relay(role),
      `DirPort ${this.relayAddress}:${this.ports.dir[role]}`,
      'ExitRelay 0',
      'AuthoritativeDirectory 1',
      'V3AuthoritativeDirectory 1',
      `TestingV3AuthInitialVotingInterval ${VOTING_INTERVAL}`,
      'TestingV3AuthInitialVoteDelay 2',
      'TestingV3AuthInitialDistDelay 2',
      `TestingV3AuthVotingStartOffset ${startOffset}`,
      `V3AuthVotingInterval ${VOTING_INTERVAL}`,
      'V3AuthVoteDelay 2',
      'V3AuthDistDelay 2',
      'V3AuthNIntervalsValid 2',
      'TestingDirAuthVoteGuard *',
      'TestingDirAuthVoteExit *',
      `TestingDirAuthVoteHSDir ${hsdirs}`,
      'TestingMinExitFlagThreshold 0',
      '',
    ].join('\n');
  }

  middle(dataDir: string): string {
    return [...this.common('relay', dataDir), ...this.relay('relay'), 'DirCache 0', 'ExitRelay 0', ''].join('\n');
  }

  exit(dataDir: string): string {
    return [
      ...this.common('exit', dataDir),
      ...this.relay('exit'),
      'DirCache 0',
      'ExitRelay 1',
      'ExitPolicy accept 127.0.0.0/8:*',
      // Off loopback a 127.0.0.1 target is no exit enclave (it is not the exit's own address) and
      // clients find no exit for it: the relays' own address is what the exit probe and tests reach.
      ...(this.relayAddress === '127.0.0.1' ? [] : [`ExitPolicy accept ${this.relayAddress}:*`]),
      'ExitPolicy reject *:*',
      'ExitPolicyRejectPrivate 0',
      'RefuseUnknownExits 0',
      'ServerDNSResolvConfFile /dev/null',
      '',
    ].join('\n');
  }

  private clientSide(role: TorRole, dataDir: string): string[] {
    return [
      ...this.common(role, dataDir),
      'UseMicrodescriptors 0',
      'PathsNeededToBuildCircuits 0.67',
      // With five relays, onion circuits (whose guard is not chosen to avoid their last
      // hop) often end at their own guard: guard → middle → guard. The middle refuses to
      // extend back, and a client stuck on such a rendezvous point retried once a second
      // for 15–30 s (1 onion fetch in ~8). Without entry guards the first hop excludes
      // the last one (vanguards-lite needs guards, so it goes too).
      'UseEntryGuards 0',
      'VanguardsLiteEnabled 0',
    ];
  }

  client(dataDir: string): string {
    return [...this.clientSide('client', dataDir), `SocksPort 127.0.0.1:${this.ports.socks}`, ''].join('\n');
  }

  onionService(dataDir: string): string {
    return [...this.clientSide('onionService', dataDir), 'SocksPort 0', ''].join('\n');
  }
}
