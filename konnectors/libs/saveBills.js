/**
 * `saveBills(entries, fields, options)`: saves io.cozy.bills as
 * cozy-konnector-libs 5.x does: each bill's file is saved with `saveFiles`
 * (a `contractLabel` becomes its sub-folder), the bill is linked to it with
 * `invoice: 'io.cozy.files:<id>'`, and bills are deduplicated on
 * `['date', 'amount', 'vendor']` (plus `contractId` when bills have one).
 * As in 5.x, a bill whose file could not be saved is not saved, and bills
 * without `matchingCriterias.labelRegex` get the manifest's
 * `banksTransactionRegExp` there.
 *
 * Not done here: linking bills to bank operations (`linkBankOperations`),
 * `processPdf` (files cannot be read back).
 *
 * Needs GET, POST and PUT on io.cozy.bills and a folder in the manifest.
 */
import { currentJob } from './context.js';
import { InvalidArgumentError, UnsupportedError } from './exceptions.js';
import { addData } from './addData.js';
import { hydrateAndFilter } from './hydrateAndFilter.js';
import { log as baseLog } from './log.js';
import { manifest } from './manifest.js';
import { saveFiles } from './saveFiles.js';

const log = baseLog.namespace('saveBills');
const DOCTYPE = 'io.cozy.bills';

const REQUIRED = {
  date: [(value) => value instanceof Date, 'a Date'],
  amount: [(value) => typeof value === 'number', 'a number'],
  vendor: [(value) => typeof value === 'string', 'a string'],
};

/** Attributes meant for saveFiles that have no place in a bill (requestOptions may hold credentials). */
const FILE_ONLY_ATTRIBUTES = ['requestOptions', 'fileAttributes', 'filestream', 'fetchFile', 'fileDocument', 'shouldReplaceFile', 'subPath'];

/** Deep copy keeping Dates, bytes and functions (entries carry shouldSave/shouldUpdate/fetchFile callbacks). */
function clone(value) {
  if (Array.isArray(value)) return value.map(clone);
  if (value instanceof Date) return new Date(value.getTime());
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, clone(item)]));
  }
  return value;
}

function convertCurrency(currency) {
  if (!currency) return 'EUR';
  if (currency.includes('€')) return 'EUR';
  if (currency.includes('$')) return 'USD';
  if (currency.includes('£')) return 'GBP';
  return currency;
}

function checkRequiredAttributes(entries) {
  entries.forEach((entry, index) => {
    for (const [attribute, [isValid, expected]] of Object.entries(REQUIRED)) {
      if (entry[attribute] === undefined || entry[attribute] === null) {
        throw new InvalidArgumentError(`saveBills: bill #${index} has no \`${attribute}\` (${expected} is required)`);
      }
      if (!isValid(entry[attribute])) {
        throw new InvalidArgumentError(`saveBills: bill #${index} has a \`${attribute}\` that is not ${expected}: ${JSON.stringify(entry[attribute])}`);
      }
    }
  });
}

/**
 * cozy-konnector-libs' `manageContractsData` (also `saveBills.manageContractsData`):
 * contract ids become a deduplication key (added to `options.keys` when there
 * are keys), and contract labels the sub-folder of the bills' files.
 */
function manageContractsData(entries, options) {
  if (options.contractLabel && options.contractId === undefined) {
    log('warn', 'contractLabel used without contractId, ignoring it.');
    return entries;
  }
  if (options.contractId) {
    options.contractLabel ||= options.contractId;
    options.subPath = options.contractLabel;
    options.keys?.push('contractId');
    return entries.map((entry) => ({ ...entry, contractId: options.contractId, contractLabel: options.contractLabel }));
  }
  if (entries.some((entry) => entry.contractId)) {
    options.keys?.push('contractId');
    return entries.map((entry) => {
      if (!entry.contractId) return entry;
      const contractLabel = entry.contractLabel || entry.contractId;
      return { ...entry, contractLabel, subPath: contractLabel };
    });
  }
  return entries;
}

/**
 * @param {object[]} inputEntries bills: `date` (Date), `amount` (number), `vendor` (string), `currency`...
 * @param {object|string} fields the konnector's fields (or a folder path)
 * @param {object} [inputOptions] `keys`, `shouldSave`, `shouldUpdate`, `contractId`, `sourceAccountIdentifier`...
 * @returns {Promise<object[]>} the bills written (created or updated)
 */
export async function saveBills(inputEntries, fields, inputOptions = {}) {
  if (inputOptions.processPdf) throw new UnsupportedError('the saveBills option `processPdf`', 'files cannot be read back from the Cozy');
  if (!Array.isArray(inputEntries) || inputEntries.length === 0) {
    log('warn', 'no bills to save');
    return [];
  }
  const options = clone(inputOptions);
  const job = currentJob();
  if (options.sourceAccountIdentifier === undefined) {
    const login = typeof fields === 'object' && fields ? fields.login : undefined;
    options.sourceAccountIdentifier = login ?? (job && typeof job.fields.login === 'string' ? job.fields.login : undefined);
  }
  options.keys = [...(options.keys ?? Object.keys(REQUIRED))];

  const defaultShouldUpdate = (entry, dbEntry) =>
    entry.invoice !== dbEntry.invoice ||
    !dbEntry.cozyMetadata ||
    // cozy-konnector-libs updates every bill lacking matchingCriterias; here only when there are some to add.
    (entry.matchingCriterias !== undefined && dbEntry.matchingCriterias === undefined);
  const userShouldUpdate = options.shouldUpdate;
  options.shouldUpdate = userShouldUpdate
    ? (entry, dbEntry) => defaultShouldUpdate(entry, dbEntry) || userShouldUpdate(entry, dbEntry)
    : defaultShouldUpdate;

  const entries = manageContractsData(clone(inputEntries), options).filter((entry) => !entry.__ignore);
  // Checked before any download: a bill that cannot be saved should not cost its file.
  checkRequiredAttributes(entries);
  const withFiles = (await saveFiles(entries, fields, options)).filter((entry) => entry.fileDocument);
  if (withFiles.length < entries.length) {
    log('warn', `${entries.length - withFiles.length} bill(s) without a saved file are not saved (as cozy-konnector-libs 5.x)`);
  }
  // As upstream: the manifest's banksTransactionRegExp tells the banking apps which operations pay these bills.
  const { banksTransactionRegExp } = manifest.data;
  const bills = withFiles.map((entry) => {
    const bill = { ...entry, currency: convertCurrency(entry.currency), invoice: `io.cozy.files:${entry.fileDocument._id}` };
    if (banksTransactionRegExp && !bill.matchingCriterias?.labelRegex) {
      bill.matchingCriterias = { ...bill.matchingCriterias, labelRegex: banksTransactionRegExp };
    }
    for (const attribute of FILE_ONLY_ATTRIBUTES) delete bill[attribute];
    return bill;
  });

  const toSave = await hydrateAndFilter(bills, DOCTYPE, options);
  log('info', `${toSave.length} of ${bills.length} bill(s) to save`);
  return addData(toSave, DOCTYPE, options);
}

// As upstream, for konnectors that prepare their bills' contracts themselves.
saveBills.manageContractsData = manageContractsData;
