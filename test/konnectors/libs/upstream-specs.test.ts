/**
 * cozy-konnector-libs 5.13.0's own spec files, run against the guest SDK (see
 * upstream-specs.ts). The package is fetched from the npm registry at test
 * time; without the registry the suite is skipped with one line saying so
 * (a failure under REQUIRE_TEST_SERVICES=1).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as acorn from 'acorn';
import { describe, expect, it } from 'vitest';
import { describeUnlessUnavailable } from '../../support/services.ts';
import { COZY_KONNECTOR_LIBS, unpackUpstream } from '../../support/upstream-package.ts';
import { createTestHost, loadGuest } from '../guest-harness.ts';
import { listSpecs, loadUpstreamSpec, type KnownDifferences } from './upstream-specs.ts';

/** Specs of modules the SDK implements: they run here. */
const RUN = [
  'libs/BaseKonnector.spec.js',
  'libs/CookieKonnectors.spec.js',
  'libs/document.spec.js',
  'libs/hydrateAndFilter.spec.js',
  'libs/manifest.spec.js',
  'libs/normalizeFilename.spec.js',
  'libs/request/request.spec.js',
  'libs/saveBills.spec.js',
  'libs/saveFiles.spec.js',
  'libs/saveIdentity.spec.js',
  'libs/scrape.spec.js',
  'libs/signin.spec.js',
  'libs/utils.spec.js',
];

/** Specs of what the SDK does not implement (docs/porting.md says why), or of upstream's own test tooling. */
const NOT_RUN: Record<string, string> = {
  'helpers/cozy-client-js-stub.spec.js': "upstream's stand-in for cozy-client-js in development mode",
  'helpers/cozy-domain.spec.js': "upstream's reading of COZY_URL; a konnector here reaches no stack",
  'libs/CozyBrowser.spec.js': 'zombie headless browser: no such thing in the sandbox',
  'libs/categorization/dashboard/services-fixtures.spec.js': 'categorize: unsupported (no model)',
  'libs/categorization/dashboard/services-global-fixtures.spec.js': 'categorize: unsupported (no model)',
  'libs/categorization/globalModel/model.spec.js': 'categorize: unsupported (no model)',
  'libs/categorization/index.spec.js': 'categorize: unsupported (no model)',
  'libs/categorization/localModel/classifier.spec.js': 'categorize: unsupported (no model)',
  'libs/categorization/localModel/helpers.spec.js': 'categorize: unsupported (no model)',
  'libs/categorization/localModel/model.spec.js': 'categorize: unsupported (no model)',
  'libs/error.spec.js': "process event handlers of upstream's BaseKonnector: the sandbox has no process",
  'libs/html2pdf.spec.js': 'htmlToPDF: unsupported (no PDF library)',
  'libs/linkBankOperations.spec.js': 'linkBankOperations: unsupported (bank operations are not readable)',
  'libs/linker/billsToOperation/findNeighboringOperations.spec.js': 'linkBankOperations: unsupported',
  'libs/linker/billsToOperation/helpers.spec.js': 'linkBankOperations: unsupported',
  'libs/linker/billsToOperation/operationsFilters.spec.js': 'linkBankOperations: unsupported',
  'libs/mkdirp.spec.js': 'mkdirp: unsupported (saveFiles makes folders)',
  'libs/testUtils.spec.js': "upstream's own test tooling",
};

/** Why upstream's tests that fail here do: each is a choice of this runner, said in docs/porting.md. */
const FOLDER = "the host owns the konnector's folder (from the manifest's `folders`); upstream finds it with cozy-client-js";
const TWO_FA = 'two-factor codes need cozy-home watching the account: waitForTwoFaCode throws UnsupportedError, no 2FA state methods';
const ACCOUNT_DOCUMENT =
  "the SDK reads and writes io.cozy.accounts through the documents host (the spec mocks cozy-client-js's data.find/updateAttributes)";
const LOGIN_STATE = "BaseKonnector#signin does not write the account's login state (cozy-home does not watch this runner's jobs)";
const PAYLOAD = 'no COZY_PAYLOAD: a job brings its fields and parameters (WIT job record), and the sandbox has no filesystem';
const RUN_OUTSIDE_JOB = 'run() outside a job does nothing (the module is evaluated at build time); the runtime calls it when a job starts';
const REQUEST_INTERNALS =
  "tests request-promise option functions internal to upstream and TLS against badssl.com; test/konnectors/libs/request.test.ts covers requestFactory's behaviour";
const BILL_ERROR_MESSAGE = 'the SDK names the bill and the expected type: "saveBills: bill #0 has a `amount` that is not a number: ..."';
const FILES_THROUGH_HOST =
  "files go through the host's files interface, not cozy-client's statByPath/save the spec mocks (test/konnectors/libs/files.test.ts covers saveFiles)";
const SAVE_FILES_INTERNALS = "getFileIfExists is internal to upstream's saveFiles (here the host finds a file by its path)";
const QUALIFICATION_LABELS = "the SDK's qualifications are the labels konnectors give to files; other_tax_document is not among them";
const IDENTITY_MATCHING =
  "an identity is matched on `identifier` and the job's account (two accounts of one konnector keep two identities), not on createdByApp";
const IDENTITY_QUERY = "with merge: false the SDK reads identities through the documents host, not cozy-client's new.query the spec mocks";
const NO_DELETION = 'utils.findDuplicates throws UnsupportedError: documents cannot be deleted by konnectors here';
const NO_BANK_OPERATIONS = 'utils.sortBillsByLinkedOperationNumber throws UnsupportedError: bank operations are not readable here';

/** Upstream's tests the SDK answers differently, and why: run as `it.fails`, so that the list cannot go stale. */
export const KNOWN_DIFFERENCES: KnownDifferences = {
  'libs/BaseKonnector.spec.js': {
    'finding folder path > should find folder from fields': FOLDER,
    'finding folder path > should find folder from account': FOLDER,
    'methods > should set two fa state': TWO_FA,
    'methods > should reset two fa state': TWO_FA,
    'methods > waitForTwoFaCode should wait for 2FA code': TWO_FA,
    'methods > waitForTwoFaCode should throw on endTime': TWO_FA,
    'methods > deactivation of auto successful login > should deactivateAutoSuccessfulLogin': ACCOUNT_DOCUMENT,
    'methods > deactivation of auto successful login > should do nothing after first call': ACCOUNT_DOCUMENT,
    'methods > should notify of successful login': ACCOUNT_DOCUMENT,
    'methods > should update account attributes and cache the account': ACCOUNT_DOCUMENT,
    'methods > signin method > should call notify login methods': LOGIN_STATE,
    'methods > signin method > should not call notifySuccessfulLogin if corresponding option is defined': LOGIN_STATE,
    'readPayload > should read json string payload': PAYLOAD,
    'readPayload > should read file reference payload': PAYLOAD,
    'readPayload > should throw on wrong JSON string': PAYLOAD,
    'readPayload > should throw on wrong JSON file': PAYLOAD,
    'readPayload > should return null if no payload': PAYLOAD,
    'readPayload > should return null if null payload': PAYLOAD,
  },
  'libs/CookieKonnectors.spec.js': {
    'Cookie konnector > should initSession and saveSession': RUN_OUTSIDE_JOB,
  },
  'libs/request/request.spec.js': {
    'requestFactory > get request options > without cheerio': REQUEST_INTERNALS,
    'requestFactory > get request options > with cheerio': REQUEST_INTERNALS,
    'requestFactory > get request options > user-defined UserAgent is preserved': REQUEST_INTERNALS,
    'requestFactory > get request options > with cheerio, true and undefined generates default user-agent': REQUEST_INTERNALS,
    'requestFactory > get request options > with cheerio and user defined userAgent preserve user agent': REQUEST_INTERNALS,
    'requestFactory > transform with cheerio > get cheerio object': REQUEST_INTERNALS,
    'requestFactory > transform with cheerio > accept resolveWithFullResponse option': REQUEST_INTERNALS,
    'requestFactory > merge default options > should get default options': REQUEST_INTERNALS,
    'requestFactory > merge default options > should update default options with given ones': REQUEST_INTERNALS,
    'requestFactory > merge default options > should deactivate json with cheerio on': REQUEST_INTERNALS,
    'requestFactory > merge default options > should not activate json when cheerio false': REQUEST_INTERNALS,
    'requestFactory > TLS behavior assertions > (loading the spec file)': REQUEST_INTERNALS,
  },
  'libs/saveBills.spec.js': {
    'saveBills > should check required attributes in bills': BILL_ERROR_MESSAGE,
  },
  'libs/saveFiles.spec.js': {
    'saveFiles > when file does not exist > should create a file': FILES_THROUGH_HOST,
    'saveFiles > when file does not exist > should store file in doc': FILES_THROUGH_HOST,
    'saveFiles > when file does not exist > should have been sanitized': FILES_THROUGH_HOST,
    'saveFiles > when file exists and mime is correct > should not create a file': FILES_THROUGH_HOST,
    'saveFiles > when file exists and mime is correct > should store file in doc': FILES_THROUGH_HOST,
    'saveFiles > when file exists and mime is correct > should have been sanitized': FILES_THROUGH_HOST,
    'saveFiles > when file exists and mime is not correct > should not create a file': FILES_THROUGH_HOST,
    'saveFiles > when file exists and mime is not correct > should update a file': FILES_THROUGH_HOST,
    'saveFiles > when file exists and mime is not correct > should store file in doc': FILES_THROUGH_HOST,
    'saveFiles > when file exists and mime is not correct > should have been sanitized': FILES_THROUGH_HOST,
    'saveFiles > when entry have shouldReplaceName > should replace filename': FILES_THROUGH_HOST,
    'saveFiles > when new carbonCopy metadata available in entry > should update the file': FILES_THROUGH_HOST,
    'saveFiles > when new qualification V2 is available > should update the file': FILES_THROUGH_HOST,
    'saveFiles > when a qualification V2 needs to be replaced > should update the file': FILES_THROUGH_HOST,
    'saveFiles > when a qualification V2 do not need to be updated > should not update the file': FILES_THROUGH_HOST,
    'saveFiles > when a qualification is received > should convert qualification to a json': FILES_THROUGH_HOST,
    'saveFiles > when a qualification is received with undefined attribut > should convert and remove undefined attribut': QUALIFICATION_LABELS,
    'subPath handling > should not create subPath if no subPath specified': FILES_THROUGH_HOST,
    'subPath handling > should change the folderPath for entries with subPath': FILES_THROUGH_HOST,
    'subPath handling > should change the folderPath with subPath main option': FILES_THROUGH_HOST,
    'contract handling > should not create subPath if no contract specified': FILES_THROUGH_HOST,
    'contract handling > should change the folderPath for entries with contract': FILES_THROUGH_HOST,
    'contract handling > should change the folderPath with contract main option': FILES_THROUGH_HOST,
    'getFileIfExists > when in filepath mode > when the file does not exist, should not return any file': SAVE_FILES_INTERNALS,
    'getFileIfExists > when in filepath mode > when the file exists and without metadata, should return the file': SAVE_FILES_INTERNALS,
    'getFileIfExists > when in metadata mode > when the file does not exist, should not return any file': SAVE_FILES_INTERNALS,
    'getFileIfExists > when in metadata mode > when the file exists, should return the file': SAVE_FILES_INTERNALS,
    'getFileIfExists > when in metadata mode > when multiple fileIdAttributes are given > when the file exists, should return the file': SAVE_FILES_INTERNALS,
  },
  'libs/saveIdentity.spec.js': {
    'saveIdentity > should updateOrCreate a full identity with given identifier': IDENTITY_MATCHING,
    'saveIdentity > should updateOrCreate a full identity with given contact (for retro compatibility)': IDENTITY_MATCHING,
    'saveIdentity > should create a new identity if merge option is false': IDENTITY_QUERY,
    'saveIdentity > should replace the existing identity if merge option is false': IDENTITY_QUERY,
  },
  'libs/utils.spec.js': {
    'findDuplicates > should find duplicates and uniques': NO_DELETION,
    'findDuplicates > should work with an empty list': NO_DELETION,
    'findDuplicates > should keep linked bills by preference': NO_DELETION,
    'sortBillsByLinkedOperationNumber > should sort bills by number of linked operations': NO_BANK_OPERATIONS,
  },
};

const upstream = await unpackUpstream(COZY_KONNECTOR_LIBS);
const packageDir = 'dir' in upstream ? upstream.dir : '';
const loaded = 'dir' in upstream ? await Promise.all(RUN.map((spec) => loadUpstreamSpec(packageDir, spec))) : [];

describeUnlessUnavailable(`${COZY_KONNECTOR_LIBS.name} ${COZY_KONNECTOR_LIBS.version} spec files against the SDK`, 'unavailable' in upstream ? upstream.unavailable : undefined, () => {
  it('runs or excludes, with a reason, every spec file of the package', async () => {
    expect((await listSpecs(packageDir)).filter((spec) => !RUN.includes(spec) && NOT_RUN[spec] === undefined)).toEqual([]);
  });

  it("exports every name of the package's src/index.js", async () => {
    const index = await readFile(path.join(packageDir, 'src/index.js'), 'utf8');
    const program = acorn.parse(index, { ecmaVersion: 'latest', sourceType: 'script' });
    const names = program.body.flatMap((node) => {
      if (node.type !== 'ExpressionStatement' || node.expression.type !== 'AssignmentExpression') return [];
      const { right } = node.expression;
      return right.type === 'ObjectExpression' ? right.properties.flatMap((p) => (p.type === 'Property' && p.key.type === 'Identifier' ? [p.key.name] : [])) : [];
    });
    expect(names.length).toBeGreaterThan(25);
    const guest = await loadGuest({ code: `import * as libs from 'cozy-konnector-libs'; export const names = Object.keys(libs);` }, createTestHost());
    expect(names.filter((name) => !(guest.exports.names as string[]).includes(name))).toEqual([]);
  });

  // Empty when the package could not be had (the suite is then skipped).
  loaded.forEach((registerSpec, index) => {
    const spec = RUN[index]!;
    describe(spec, () => {
      const registered: string[] = [];
      const differences = KNOWN_DIFFERENCES[spec] ?? {};
      registerSpec(differences, registered);
      it('lists as differing only tests the spec has', () => {
        expect(Object.keys(differences).filter((name) => !registered.includes(name))).toEqual([]);
      });
    });
  });
});
