import { describe, expect, it } from 'vitest';
import { standInFields } from '../../runner/cli/compat.ts';

describe('standInFields', () => {
  it('gives each manifest field a value a person could have typed, never a real credential', () => {
    expect(standInFields({
      login: { type: 'text' },
      password: { type: 'password' },
      email: { type: 'email' },
      contactMail: {},
      birthDate: { type: 'date' },
      providerId: { type: 'dropdown', options: [{ name: 'Berlin', value: '1' }, { name: 'Lyon', value: '2' }] },
      region: { type: 'dropdown', options: [] },
    })).toEqual({
      login: 'compat-login',
      password: 'compat-password',
      email: 'compat@example.org',
      contactMail: 'compat@example.org',
      birthDate: '2026-01-01',
      providerId: '1',
      region: 'compat-region',
    });
  });
});
