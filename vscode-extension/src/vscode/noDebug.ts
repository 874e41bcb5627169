/**
 * Replaces the `debug` package in the bundle (esbuild alias). socks-proxy-agent logs the
 * target host of every SOCKS connection through `debug`, which prints when DEBUG is set in
 * the environment: that would write .onion hosts and redemption targets to stderr and into
 * VS Code's logs. This stand-in never prints.
 */
interface Debugger {
  (...args: unknown[]): void;
  enabled: boolean;
  namespace: string;
  extend(ns: string): Debugger;
}

function createDebug(namespace: string): Debugger {
  const d = (() => undefined) as unknown as Debugger;
  d.enabled = false;
  d.namespace = namespace;
  d.extend = (ns: string) => createDebug(`${namespace}:${ns}`);
  return d;
}

createDebug.enable = (_namespaces: string) => undefined;
createDebug.disable = () => '';
createDebug.enabled = (_namespace: string) => false;
createDebug.default = createDebug;

export = createDebug;
