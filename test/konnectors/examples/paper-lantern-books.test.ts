/**
 * The paper-lantern-books konnector (a catalogue scraper written as community konnectors are: CommonJS,
 * cozy-konnector-libs, cheerio), built with the real build and run in the sandbox against its vendor site.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBookshopSite } from '../../../konnectors/examples/paper-lantern-books/vendor-site.mts';
import { exampleDir } from '../../support/artifacts.ts';
import { storedDocs } from '../../support/couch.ts';
import { ENGINES, instanceOn, siteOfEachEngine } from '../../support/engines.ts';
import { md5, readStored, runPorted, startPortedEnv, storedFiles, type PortedEnv } from '../ported.ts';

const KONNECTOR = exampleDir('paper-lantern-books');
const DOCTYPE = 'com.paperlantern.books';
const ACCOUNT = 'books-account-1';
const FOLDER = '/Photos/Paper Lantern Books/jane.reader/covers';

let env: PortedEnv;

beforeAll(async () => {
  env = await startPortedEnv();
});

afterAll(async () => {
  await env?.stop();
});

describe.each(ENGINES)('paper-lantern-books, ported unmodified, on %s', (engine) => {
  const INSTANCE = instanceOn(engine, 'reader.cozy.example');
  /** Each engine's own site: a price one engine's test changes is not the other's. */
  const site = siteOfEachEngine(startBookshopSite);

  const run = (instance: string, fields: Record<string, unknown>) =>
    runPorted(env, engine, KONNECTOR, { instance, accountId: ACCOUNT, fields, vendor: { host: 'books.example', port: site().port } });

  it('logs in, walks the catalogue pages and saves every book with its cover', async () => {
    const { report, messages } = await run(INSTANCE, site().credentials);
    expect(report, messages.join('\n')).toMatchObject({ state: 'done', error: null });
    // One more write per cover: its fileIdAttributes key on the file's document.
    expect(report.saved).toEqual({ [DOCTYPE]: 7, 'io.cozy.files': 7 });
    // 7 covers and their `covers` sub-folder, which counts with files.
    expect(report.budgets.files).toEqual({ used: 8, limit: expect.any(Number) });
    // Log-in page, form, its redirect to page 1, page 1 again, 4 detail pages, page 2, 3 detail pages, 7 covers.
    expect(report.requests).toBe(19);
    expect(messages).toContain('Found 7 books');

    const files = await storedFiles(env, INSTANCE);
    expect([...files.keys()].sort()).toEqual(site().books.map((b) => `${FOLDER}/${b.upc}.${b.cover}`).sort());
    const books = await storedDocs(env.couchUrl, INSTANCE, DOCTYPE);
    expect(books).toHaveLength(site().books.length);
    for (const book of site().books) {
      const cozyPath = `${FOLDER}/${book.upc}.${book.cover}`;
      const file = files.get(cozyPath)!;
      const content = await readStored(env, INSTANCE, cozyPath);
      expect(content).toEqual(site().coverOf(book.upc));
      expect(file).toMatchObject({
        md5sum: md5(content),
        size: String(content.length),
        mime: book.cover === 'png' ? 'image/png' : 'image/jpeg',
        class: 'image',
        metadata: { fileIdAttributes: book.upc },
        cozyMetadata: { createdByApp: 'paper-lantern-books', sourceAccount: ACCOUNT, sourceAccountIdentifier: site().credentials.login },
      });
      const saved = books.find((doc) => doc.upc === book.upc);
      expect(saved).toMatchObject({
        upc: book.upc,
        title: book.title,
        price: book.price,
        currency: 'GBP',
        rating: book.rating,
        available: book.inStock,
        description: book.description,
        vendor: 'Paper Lantern Books',
        cover: `io.cozy.files:${file._id}`,
        cozyMetadata: { createdByApp: 'paper-lantern-books', sourceAccount: ACCOUNT, sourceAccountIdentifier: site().credentials.login },
      });
      expect(saved!.url).toMatch(/^http:\/\/books\.example\/catalogue\/[a-z0-9-]+_[0-9a-f]{6}\/index\.html$/);
    }
  });

  it('saves nothing twice and downloads no cover again on the next run', async () => {
    const booksBefore = await storedDocs(env.couchUrl, INSTANCE, DOCTYPE);
    const filesBefore = await storedFiles(env, INSTANCE);
    const { report } = await run(INSTANCE, site().credentials);
    expect(report).toMatchObject({ state: 'done', saved: {} });
    expect(report.requests).toBe(19 - 7);
    expect(report.budgets.files.used).toBe(0);
    const revs = (docs: Array<Record<string, any>>) => docs.map((d) => `${d._id}@${d._rev}`).sort();
    expect(revs(await storedDocs(env.couchUrl, INSTANCE, DOCTYPE))).toEqual(revs(booksBefore));
    expect(revs([...(await storedFiles(env, INSTANCE)).values()])).toEqual(revs([...filesBefore.values()]));
  });

  it('updates exactly the book whose price changed, in place', async () => {
    const [first] = site().books;
    const before = (await storedDocs(env.couchUrl, INSTANCE, DOCTYPE)).find((doc) => doc.upc === first!.upc)!;
    site().setPrice(first!.upc, 45.5);
    const { report } = await run(INSTANCE, site().credentials);
    expect(report).toMatchObject({ state: 'done', saved: { [DOCTYPE]: 1 } });
    const after = await storedDocs(env.couchUrl, INSTANCE, DOCTYPE);
    expect(after).toHaveLength(site().books.length);
    expect(after.find((doc) => doc.upc === first!.upc)).toMatchObject({ _id: before._id, _rev: expect.stringMatching(/^2-/), price: 45.5 });
  });

  it('ends with LOGIN_FAILED on a wrong password, saving nothing', async () => {
    const instance = instanceOn(engine, 'wrong-password.cozy.example');
    const { report, messages } = await run(instance, { ...site().credentials, password: 'open sesame' });
    expect(report).toMatchObject({ state: 'errored', error: 'LOGIN_FAILED', saved: {} });
    expect(messages).toContain('Please enter a correct username and password.');
    expect(await storedDocs(env.couchUrl, instance, DOCTYPE)).toEqual([]);
    expect(await storedDocs(env.couchUrl, instance, 'io.cozy.files')).toEqual([]);
  });
});
