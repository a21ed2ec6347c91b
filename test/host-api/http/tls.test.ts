/**
 * TLS is verified against the requested host name, even when the operator
 * maps that name to a loopback address. Fixtures: see test/fixtures/tls/README.md.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { describe, expect, test } from 'vitest';
import { expectHttpError, get, makeHttp, startServer, text } from './helpers.ts';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/tls/${name}`, import.meta.url), 'utf8');
const ca = fixture('ca.pem');

async function vendorTls() {
  const server = await startServer(
    (req, res) => res.end(`tls ${req.url}`),
    { server: https.createServer({ cert: fixture('vendor.pem'), key: fixture('vendor.key') }) },
  );
  return { server, connectTo: [`vendor.test:443:127.0.0.1:${server.port}`, `other.test:443:127.0.0.1:${server.port}`] };
}

describe('TLS', () => {
  test('a certificate from an unknown CA is refused; trusting that CA, the request succeeds', async () => {
    const { connectTo } = await vendorTls();
    await expectHttpError(makeHttp({ connectTo }).http.send(get('https://vendor.test/bills')), 'network', /certificate/i);

    const res = await makeHttp({ connectTo, extraCaCertificates: [ca] }).http.send(get('https://vendor.test/bills'));
    expect([res.status, text(res.body), res.url]).toEqual([200, 'tls /bills', 'https://vendor.test/bills']);
  });

  test('the certificate must match the requested name, not the address connected to', async () => {
    const { connectTo } = await vendorTls();
    const { http } = makeHttp({ connectTo, extraCaCertificates: [ca] });
    await expectHttpError(http.send(get('https://other.test/bills')), 'network', /altnames|does not match/i);
    expect((await http.send(get('https://vendor.test/bills'))).status).toBe(200);
  });
});
