/**
 * `saveIdentity(identity, accountIdentifier, options)`: saves the account
 * owner's identity (io.cozy.identities) as cozy-konnector-libs does: one
 * document per account identifier, merged with the stored one unless
 * `options.merge` is false. A plain io.cozy.contacts object is accepted as the
 * identity's `contact` (deprecated upstream too).
 *
 * The contact is formatted as upstream does (`formatIdentityContact`, then
 * `trimProperties`; both exported). cozy-konnector-libs matches on the
 * identifier and the konnector's slug; here it matches on the identifier and
 * the account (`cozyMetadata.sourceAccount`, which the host sets on every
 * document), so that two accounts of one konnector keep an identity each.
 *
 * Needs GET, POST and PUT on io.cozy.identities in the manifest.
 */
import { currentJob } from './context.js';
import { saveDocument } from './host.js';
import { log as baseLog } from './log.js';
import { updateOrCreate } from './updateOrCreate.js';
import { queryAll } from './utils.js';

const log = baseLog.namespace('saveIdentity');
const DOCTYPE = 'io.cozy.identities';

/** Phones as io.cozy.contacts has them: a list of `{ number }`, the numbers keeping only digits, `+` and `.`, as upstream. */
function formatPhone(phone) {
  return (Array.isArray(phone) ? phone : [{ number: phone }]).map((item) => {
    const entry = typeof item === 'string' ? { number: item } : item;
    if (typeof entry.number !== 'string') {
      log('warn', 'There is no number in phone object');
      return entry;
    }
    return { ...entry, number: entry.number.replace(/[^\d.+]/g, '') };
  });
}

/**
 * Addresses as io.cozy.contacts has them: a list, each with a `formattedAddress` without HTML tags or line
 * breaks, as upstream; one without it gets it from its parts (upstream only warns).
 */
function formatAddress(address) {
  return (Array.isArray(address) ? address : [address]).map((item) => {
    if (typeof item === 'string') item = { formattedAddress: item };
    if (typeof item.formattedAddress === 'string') {
      return { ...item, formattedAddress: item.formattedAddress.replace(/<[^>]*>/g, '').replace(/\r\n|[\n\r]/g, ' ') };
    }
    const parts = [item.street, item.postcode ?? item.postCode, item.city, item.country].filter((part) => typeof part === 'string');
    return { ...item, formattedAddress: parts.join(' ') };
  });
}

/**
 * cozy-konnector-libs' `formatIdentityContact`: a contact's `phone`, `address` and `email` as the lists
 * io.cozy.contacts has (a lone string becomes `[{ number }]`, `[{ formattedAddress }]`, `[{ address }]`).
 * @param {object} contact @returns {object} a formatted copy
 */
export function formatIdentityContact(contact) {
  const formatted = { ...contact };
  if (formatted.phone) formatted.phone = formatPhone(formatted.phone);
  if (formatted.address) formatted.address = formatAddress(formatted.address);
  if (formatted.email && !Array.isArray(formatted.email)) formatted.email = [{ address: formatted.email }];
  return formatted;
}

/**
 * cozy-konnector-libs' `trimProperties`: trims every string of `object`, at any depth, in place.
 * @template T @param {T} object @returns {T} the same object
 */
export function trimProperties(object) {
  for (const key of Object.keys(object)) {
    const value = object[key];
    if (typeof value === 'string') object[key] = value.trim();
    else if (value !== null && typeof value === 'object') trimProperties(value);
  }
  return object;
}

/**
 * @param {object} contactOrIdentity `{ contact: {...} }` (an io.cozy.identities) or an io.cozy.contacts object
 * @param {string} accountIdentifier e.g. the login
 * @param {{ merge?: boolean, sourceAccountIdentifier?: string }} [options]
 */
export async function saveIdentity(contactOrIdentity, accountIdentifier, options = {}) {
  log('debug', 'saving user identity');
  if (accountIdentifier === undefined || accountIdentifier === null) {
    log('warn', "Can't set identity as no accountIdentifier was provided");
    return;
  }
  if (contactOrIdentity === undefined || contactOrIdentity === null) {
    log('warn', "Can't set identity as no identity was provided");
    return;
  }
  const isIdentity = Boolean(contactOrIdentity.contact);
  if (!isIdentity) log('warn', 'passing a io.cozy.contacts object is deprecated, please pass a full identity object');
  const identity = isIdentity ? { ...contactOrIdentity, contact: { ...contactOrIdentity.contact } } : { contact: { ...contactOrIdentity } };
  identity.identifier = accountIdentifier;
  identity.contact = trimProperties(structuredClone(formatIdentityContact(identity.contact)));
  const job = currentJob();
  // The host writes the same value; here it only serves to match the stored identity of this account.
  if (job) identity.cozyMetadata = { ...identity.cozyMetadata, sourceAccount: job.accountId };
  const matching = job ? ['identifier', 'cozyMetadata.sourceAccount'] : ['identifier'];
  const saveOptions = { ...options, sourceAccountIdentifier: options.sourceAccountIdentifier ?? accountIdentifier };

  if (options.merge === false) {
    // The stored identity is replaced as a whole (only its id and revision are kept).
    const [stored] = (await queryAll(DOCTYPE, { identifier: accountIdentifier }))
      .filter((doc) => !job || (doc.cozyMetadata && doc.cozyMetadata.sourceAccount === job.accountId));
    const cozyMetadata = { ...stored?.cozyMetadata, ...identity.cozyMetadata, sourceAccountIdentifier: saveOptions.sourceAccountIdentifier };
    await saveDocument(DOCTYPE, stored ? { ...identity, _id: stored._id, _rev: stored._rev, cozyMetadata } : { ...identity, cozyMetadata });
    return;
  }
  await updateOrCreate([identity], DOCTYPE, matching, saveOptions);
}
