/**
 * A throwaway PKI for test servers that must speak real TLS (Key Vault stand-in,
 * kube-apiserver): a P-256 CA and one server certificate, made with the openssl CLI.
 * The CA key is deleted once the server certificate is signed.
 */
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface TestPkiOptions {
  caName: string;
  serverName: string;
  /** subjectAltName entries, e.g. ['DNS:localhost', 'IP:127.0.0.1']. */
  altNames: string[];
  days: number;
}

export interface TestPki {
  caPem: string;
  certFile: string;
  keyFile: string;
}

/** Writes `ca.crt`, `server.crt` and `server.key` into `dir` (which the caller owns). */
export async function makeTestPki(dir: string, o: TestPkiOptions): Promise<TestPki> {
  const run = (args: string[]) => execFileAsync('openssl', args, { cwd: dir });
  const ca = join(dir, 'ca');
  const srv = join(dir, 'server');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await run(['req', '-x509', '-new', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', String(o.days), '-subj', `/CN=${o.caName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await run(['req', '-new', ...ec, '-keyout', `${srv}.key`, '-out', `${srv}.csr`, '-subj', `/CN=${o.serverName}`]);
  await writeFile(
    `${srv}.ext`,
    ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth', `subjectAltName=${o.altNames.join(',')}`, ''].join('\n'),
  );
  await run(['x509', '-req', '-in', `${srv}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${srv}.crt`, '-days', String(o.days), '-extfile', `${srv}.ext`]);
  await rm(`${ca}.key`, { force: true }); // nothing else is ever signed with it
  return { caPem: await readFile(`${ca}.crt`, 'utf8'), certFile: `${srv}.crt`, keyFile: `${srv}.key` };
}
