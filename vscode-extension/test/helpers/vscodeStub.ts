/**
 * Just enough of the `vscode` module to construct the real Controller and run its activation
 * path outside VS Code (the startup-beacon test). Installed by resolving `vscode` to this
 * object before the controller is required.
 */
import Module from 'node:module';

export interface VscodeStub {
  settings: Record<string, unknown>;
  messages: string[];
}

let installed: VscodeStub | undefined;

/**
 * Installs the stub once per process (the controller module, once required, keeps the stub it
 * saw); a later call replaces the settings and messages in place, so every test file sees its own.
 */
export function installVscodeStub(wanted: Record<string, unknown>): VscodeStub {
  if (installed) {
    for (const k of Object.keys(installed.settings)) delete installed.settings[k];
    Object.assign(installed.settings, wanted);
    installed.messages.length = 0;
    return installed;
  }
  const settings = { ...wanted };
  const messages: string[] = [];
  const none = () => ({ dispose() {} });
  const stub = {
    workspace: {
      getConfiguration: (section?: string) => ({
        get: <T>(key: string, dflt?: T) => (settings[section ? `${section}.${key}` : key] as T | undefined) ?? dflt,
        update: async () => undefined,
      }),
      onDidChangeConfiguration: none,
    },
    window: {
      activeTextEditor: undefined,
      onDidChangeActiveTextEditor: none,
      showWarningMessage: async (m: string) => void messages.push(m),
      showInformationMessage: async (m: string) => void messages.push(m),
      showErrorMessage: async (m: string) => void messages.push(m),
      withProgress: async (_o: unknown, fn: (p: { report(): void }, t: { onCancellationRequested(): void }) => Promise<unknown>) => fn({ report() {} }, { onCancellationRequested() {} }),
    },
    env: { openExternal: async () => true, clipboard: { writeText: async () => undefined } },
    Uri: { parse: (s: string) => ({ toString: () => s }) },
    ProgressLocation: { Notification: 15 },
    ConfigurationTarget: { Global: 1 },
    EventEmitter: class {
      event = none;
      fire() {}
      dispose() {}
    },
    Disposable: class {
      constructor(private readonly f: () => void) {}
      dispose() {
        this.f();
      }
    },
  };
  const path = '/virtual/vscode-stub.js';
  const M = Module as unknown as { _resolveFilename: (req: string, ...rest: unknown[]) => string; _cache: Record<string, unknown> };
  const orig = M._resolveFilename;
  M._resolveFilename = function (req: string, ...rest: unknown[]) {
    return req === 'vscode' ? path : orig.call(this, req, ...rest);
  };
  M._cache[path] = { id: path, filename: path, loaded: true, exports: stub, children: [], paths: [] };
  installed = { settings, messages };
  return installed;
}
