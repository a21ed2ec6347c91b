/** The connect form's fields and their validation, as the catalog makes them from a manifest's `fields`. */
import { expect, it } from 'vitest';
import { parseManifest } from '../../../runner/compile/manifest.ts';
import { catalogEntry, credentialsSchema, visibleFields, type CatalogEntry } from '../../../runner/serve/web/catalog.ts';

const entry: CatalogEntry = {
  slug: 'bank', name: 'Bank', version: '1.0.0', description: '', hosts: [], doctypes: [], dataTypes: [], frequency: 'daily',
  fields: [
    { name: 'login', label: 'Login', type: 'text', required: true },
    { name: 'password', label: 'Password', type: 'password', required: true },
    { name: 'branch', label: 'Branch', type: 'select', required: true, options: [{ value: 'north', label: 'North' }, { value: 'south', label: 'South' }] },
    { name: 'nickname', label: 'Nickname', type: 'text', required: false },
  ],
};

it('requires the required fields, takes a list\'s values only, and keeps an edit\'s empty password', () => {
  const connect = credentialsSchema(entry, false);
  expect(connect.safeParse({ login: 'me', password: 'p', branch: 'north' }).success).toBe(true);
  const missing = connect.safeParse({ login: 'me', password: '', branch: 'west', extra: 'x' });
  expect(missing.success).toBe(false);
  expect(missing.error!.issues.map((issue) => issue.message).sort()).toEqual(
    ['Branch: one of north, south', 'Password is required', 'Unrecognized key(s) in object: \'extra\''].sort());
  expect(credentialsSchema(entry, true).safeParse({ login: 'me', branch: 'south' }).success).toBe(true);
});

it('shows an account\'s values again, but never its password', () => {
  expect(visibleFields(entry, { login: 'me', password: 'secret', branch: 'north' })).toEqual({ login: 'me', branch: 'north' });
});

it('makes the form from the manifest: standard labels, dropdowns as lists, advanced fields left out; the daily or weekly default', () => {
  const entry = catalogEntry(parseManifest({
    slug: 'bank', name: 'Bank', version: '1.0.0', frequency: 'monthly', vendor_link: 'https://www.bank.example/',
    fields: {
      login: { type: 'text' }, password: { type: 'password' },
      branch: { type: 'dropdown', options: [{ value: 'n', name: 'North' }] },
      internal_id: { type: 'text', required: false }, debug: { type: 'text', advanced: true },
    },
    permissions: { bills: { type: 'io.cozy.bills' }, accounts: { type: 'io.cozy.accounts' } },
  }, 'test'));
  expect(entry.fields).toEqual([
    { name: 'login', label: 'Login', type: 'text', required: true },
    { name: 'password', label: 'Password', type: 'password', required: true },
    { name: 'branch', label: 'Branch', type: 'select', required: true, options: [{ value: 'n', label: 'North' }] },
    { name: 'internal_id', label: 'Internal id', type: 'text', required: false },
  ]);
  expect(entry).toMatchObject({ frequency: 'weekly', hosts: ['www.bank.example'], doctypes: ['io.cozy.bills'] });
});
