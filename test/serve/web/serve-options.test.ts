/** `konnector serve`'s options for My Accounts, as the operator types them. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../../runner/errors.ts';
import { parseServeArgs } from '../../../runner/serve/cli.ts';
import { TOKEN } from './kit.ts';

describe('konnector serve --public-url --smtp --mail-from', () => {
  const saved = process.env.KONNECTOR_SERVE_TOKEN;
  beforeEach(() => {
    process.env.KONNECTOR_SERVE_TOKEN = TOKEN;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.KONNECTOR_SERVE_TOKEN;
    else process.env.KONNECTOR_SERVE_TOKEN = saved;
  });

  it('go to the web app\'s options', async () => {
    const options = await parseServeArgs(['--public-url', 'https://accounts.example/', '--smtp', 'smtp://u:p@mail.example:587',
      '--mail-from', 'Accounts <a@example>']);
    expect(options).not.toBe('help');
    expect(options !== 'help' && options.myAccounts).toMatchObject({
      publicUrl: 'https://accounts.example', smtpUrl: 'smtp://u:p@mail.example:587', mailFrom: 'Accounts <a@example>',
    });
  });

  it('refuse a public URL or SMTP server that is not a URL of its kind, naming the option', async () => {
    await expect(parseServeArgs(['--public-url', 'accounts.example'])).rejects.toThrow(UsageError);
    await expect(parseServeArgs(['--public-url', 'ftp://accounts.example'])).rejects.toThrow('--public-url ftp://accounts.example: expected a URL starting with http:// or https://');
    await expect(parseServeArgs(['--smtp', 'mail.example:587'])).rejects.toThrow('--smtp mail.example:587: expected a URL starting with smtp:// or smtps://');
  });
});
