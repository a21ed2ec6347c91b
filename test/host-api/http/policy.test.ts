/** The pure parts of the egress policy: address classification and the configuration syntaxes. */
import { describe, expect, test } from 'vitest';
import { HttpConfigError } from '../../../host-api/http/errors.ts';
import { checkAddress, EgressPolicy, operatorHostsFor, parseAllowedHost, parseConnectTo, parseOperatorHosts } from '../../../host-api/http/policy.ts';

describe('checkAddress', () => {
  test.each([
    '0.0.0.0', '0.1.2.3', '10.0.0.1', '100.64.0.1', '100.127.255.255', '127.0.0.1', '127.8.9.10', '169.254.169.254',
    '172.16.0.1', '172.31.255.255', '192.0.0.8', '192.0.2.1', '192.88.99.1', '192.168.0.1', '198.18.0.1', '198.19.255.255',
    '198.51.100.7', '203.0.113.9', '224.0.0.251', '239.255.255.250', '240.0.0.1', '255.255.255.255',
    '::', '::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '::ffff:169.254.169.254', '64:ff9b::7f00:1', '64:ff9b::a00:1',
    '64:ff9b:1::808:808', '100::1', '2001::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001:db8::1', '2002:7f00:1::',
    '2002:c0a8:101::1', '3fff::1', 'fc00::1', 'fd12:3456::1', 'fe80::1', 'fe80::1%eth0', 'fec0::1', 'ff02::1', '::7f00:1', '5f00::1',
  ])('refuses %s', (address) => {
    expect(checkAddress(address).ok).toBe(false);
  });

  test.each([
    ['8.8.8.8', '8.8.8.8'],
    ['1.1.1.1', '1.1.1.1'],
    ['93.184.215.14', '93.184.215.14'],
    ['100.63.255.255', '100.63.255.255'],
    ['172.15.255.255', '172.15.255.255'],
    ['172.32.0.1', '172.32.0.1'],
    ['192.169.0.1', '192.169.0.1'],
    ['223.255.255.255', '223.255.255.255'],
    ['2606:4700:4700::1111', '2606:4700:4700::1111'],
    ['2a00:1450:4007:80e::200e', '2a00:1450:4007:80e::200e'],
    ['::ffff:8.8.8.8', '8.8.8.8'],
    ['64:ff9b::808:808', '64:ff9b::808:808'],
    ['2002:808:808::1', '2002:808:808::1'],
  ])('allows %s and connects to %s', (address, connect) => {
    expect(checkAddress(address)).toEqual({ ok: true, address: connect });
  });

  test('fails closed on anything that is not a strict IP address', () => {
    for (const bad of ['', 'localhost', '127.1', '0x7f.0.0.1', '2130706433', '[::1]', '1.2.3.4.5']) {
      expect(checkAddress(bad)).toEqual({ ok: false, reason: `"${bad}" is not an IP address` });
    }
  });

  test('names the range and the embedded address', () => {
    expect(checkAddress('169.254.169.254')).toEqual({
      ok: false,
      reason: '169.254.169.254 is in 169.254.0.0/16 (link-local, where cloud metadata services answer)',
    });
    expect(checkAddress('::ffff:a9fe:a9fe')).toMatchObject({ reason: expect.stringMatching(/^::ffff:a9fe:a9fe embeds 169\.254\.169\.254 is in/) });
  });
});

describe('parseAllowedHost', () => {
  test.each([
    ['example.com', { host: 'example.com', wildcard: false }],
    ['EXAMPLE.com.', { host: 'example.com', wildcard: false }],
    ['https://*.example.com', { scheme: 'https', host: 'example.com', wildcard: true }],
    ['http://api.example.com:8080/', { scheme: 'http', host: 'api.example.com', port: 8080 }],
    ['bücher.example', { host: 'xn--bcher-kva.example' }],
    ['[2001:DB8::1]:443', { host: '[2001:db8::1]', port: 443 }],
    ['0x7f.1', { host: '127.0.0.1' }],
  ])('%s', (spec, expected) => {
    expect(parseAllowedHost(spec)).toMatchObject({ spec, ...expected });
  });

  test.each([
    ['ftp://example.com', /scheme "ftp" is not allowed/],
    ['https://example.com/path', /no path/],
    ['user@example.com', /not a valid host/],
    ['example.com:0', /port "0"/],
    ['example.com:99999', /port "99999"/],
    ['example.com:http', /port "http"/],
    ['*', /not a valid host/],
    ['*.127.0.0.1', /wildcard cannot apply to an IP address/],
    ['foo.*.example.com', /not a valid host/],
    ['', /not a valid host/],
  ])('refuses %j', (spec, message) => {
    expect(() => parseAllowedHost(spec)).toThrow(HttpConfigError);
    expect(() => parseAllowedHost(spec)).toThrow(message);
  });
});

describe("the operator's allowed hosts (--allow-host [slug=]spec)", () => {
  test('gives each konnector the hosts for every konnector and its own; a konnector none names reaches nothing', () => {
    const hosts = parseOperatorHosts(['https://*.shared.example', 'energy=energy.example', 'energy=api.energy.example:8443', 'water=water.example']);
    expect(hosts).toEqual({
      everyKonnector: ['https://*.shared.example'],
      bySlug: { energy: ['energy.example', 'api.energy.example:8443'], water: ['water.example'] },
    });
    expect(operatorHostsFor(hosts, 'energy')).toEqual(['https://*.shared.example', 'energy.example', 'api.energy.example:8443']);
    expect(operatorHostsFor(hosts, 'other')).toEqual(['https://*.shared.example']);
    expect(operatorHostsFor(parseOperatorHosts(['water=water.example']), 'energy')).toEqual([]);
    // No list from the operator: the manifest alone decides.
    expect(operatorHostsFor(undefined, 'energy')).toBeUndefined();
  });

  test('refuses a bad spec, for every konnector or for one', () => {
    expect(() => parseOperatorHosts(['energy=http://'])).toThrow(HttpConfigError);
    expect(() => parseOperatorHosts(['*'])).toThrow(HttpConfigError);
    expect(() => parseOperatorHosts(['Energy=energy.example'])).toThrow(/before "=" must be a konnector slug/);
  });
});

describe('parseConnectTo', () => {
  test('parses and normalizes', () => {
    expect(parseConnectTo('vendor.test:80:127.0.0.1:8080')).toEqual({ host: 'vendor.test', port: 80, toAddress: '127.0.0.1', toPort: 8080 });
    expect(parseConnectTo('Vendor.TEST.:443:[::1]:8443')).toEqual({ host: 'vendor.test', port: 443, toAddress: '::1', toPort: 8443 });
    expect(parseConnectTo('[::ffff:127.0.0.1]:80:127.0.0.1:1')).toMatchObject({ host: '[::ffff:7f00:1]' });
    expect(parseConnectTo('2130706433:80:10.0.0.1:80')).toMatchObject({ host: '127.0.0.1' });
  });

  test.each([
    ['vendor.test:80:127.0.0.1', /four colon-separated fields/],
    ['vendor.test:80:localhost:8080', /"localhost" is not an IP address/],
    ['vendor.test:80:::1:8080', /four colon-separated fields/],
    ['vendor.test:80:[127.0.0.1]:8080', /"\[127\.0\.0\.1\]" is not an IP address/],
    ['vendor.test:eighty:127.0.0.1:8080', /port "eighty"/],
    ['vendor.test:80:127.0.0.1:70000', /port "70000"/],
    [':80:127.0.0.1:8080', /"" is not a valid host/],
  ])('refuses %j with a hint', (spec, message) => {
    expect(() => parseConnectTo(spec)).toThrow(HttpConfigError);
    expect(() => parseConnectTo(spec)).toThrow(message);
    expect(() => parseConnectTo(spec)).toThrow(/Expected HOST:PORT:ADDR:PORT/);
  });
});

describe('EgressPolicy.check', () => {
  const konnectorList = (specs: string[]) => ({ whose: "the konnector's" as const, hosts: specs.map(parseAllowedHost) });
  const policy = new EgressPolicy(
    [konnectorList(['example.com', 'https://*.example.com', 'api.example.net:8443'])],
    [parseConnectTo('example.com:8080:127.0.0.1:9000')],
  );

  test.each([
    ['http:', 'example.com', 80],
    ['https:', 'example.com', 443],
    ['https:', 'example.com.', 443],
    ['https:', 'a.b.example.com', 443],
    ['http:', 'api.example.net', 8443],
    ['http:', 'example.com', 8080],
  ])('passes %s//%s:%i', (protocol, host, port) => {
    expect(policy.check(protocol, host, port).host).toBe(host);
  });

  test('a mapped destination carries its mapping', () => {
    expect(policy.check('http:', 'example.com', 8080).connectTo).toEqual({ host: 'example.com', port: 8080, toAddress: '127.0.0.1', toPort: 9000 });
    expect(policy.check('http:', 'example.com', 80).connectTo).toBeUndefined();
  });

  test.each([
    ['http:', 'a.example.com', 80, /http:\/\/a\.example\.com is not in the konnector's allowedHosts/],
    ['https:', 'example.com.evil.net', 443, /is not in the konnector's allowedHosts/],
    ['https:', 'notexample.com', 443, /is not in the konnector's allowedHosts/],
    ['https:', 'example.com', 8443, /port 8443 of host example\.com is refused \(the konnector's allowedHosts permits ports 80, 443\)/],
    ['http:', 'api.example.net', 80, /port 80 of host api\.example\.net is refused \(the konnector's allowedHosts permits ports 8443\)/],
    ['ftp:', 'example.com', 21, /scheme "ftp:" is refused/],
  ])('denies %s//%s:%i', (protocol, host, port, message) => {
    expect(() => policy.check(protocol, host, port)).toThrow(message);
  });

  test("the operator's list narrows the konnector's, and cannot be widened by it", () => {
    const narrowed = new EgressPolicy(
      [konnectorList(['example.com', 'https://*.example.com']), { whose: "the operator's", hosts: ['https://a.example.com'].map(parseAllowedHost) }],
      [],
    );
    expect(narrowed.check('https:', 'a.example.com', 443).host).toBe('a.example.com');
    expect(() => narrowed.check('https:', 'b.example.com', 443)).toThrow(/https:\/\/b\.example\.com is not in the operator's allowedHosts/);
    expect(() => narrowed.check('https:', 'example.com', 443)).toThrow(/not in the operator's allowedHosts/);
    const operatorOnly = new EgressPolicy([{ whose: "the operator's", hosts: ['*.example.com'].map(parseAllowedHost) }], []);
    expect(operatorOnly.check('https:', 'x.example.com', 443).host).toBe('x.example.com');
    expect(() => operatorOnly.check('https:', 'evil.net', 443)).toThrow(/not in the operator's allowedHosts/);
  });

  test('without allowedHosts every public host passes on 80 and 443 only', () => {
    const open = new EgressPolicy([], []);
    expect(open.check('https:', 'anything.example', 443).host).toBe('anything.example');
    expect(open.check('http:', '93.184.215.14', 80).host).toBe('93.184.215.14');
    expect(() => open.check('http:', 'anything.example', 6060)).toThrow(/port 6060 of host anything\.example is refused/);
    expect(() => open.check('http:', '[::1]', 80)).toThrow(/address of host \[::1\] refused: ::1 is in ::1\/128/);
  });
});
