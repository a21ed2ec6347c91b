/**
 * `saveIdentity(identity, accountIdentifier, options)`: saves the account
 * owner's identity (io.cozy.identities) as cozy-konnector-libs does: one
 * document per account identifier, merged with the stored one unless
 * `options.merge` is false. A plain io.cozy.contacts object is accepted as the
 * identity's `contact` (deprecated upstream too).
 *
 * cozy-konnector-libs matches on the identifier and the konnector's slug; a
 * konnector does not know its slug here, so it matches on the identifier and
 * the account (`cozyMetadata.sourceAccount`), which the host sets.
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

/** A phone as io.cozy.contacts has them: a list of `{ number }`. */
function formatPhone(phone) {
  return (Array.isArray(phone) ? phone : [phone]).map((item) => (typeof item === 'string' ? { number: item } : item));
}

/** Addresses as io.cozy.contacts has them: a list, each with a `formattedAddress`. */
function formatAddress(address) {
  return (Array.isArray(address) ? address : [address]).map((item) => {
    if (typeof item === 'string') return { formattedAddress: item };
    if (item.formattedAddress) return item;
    const parts = [item.street, item.postcode ?? item.postCode, item.city, item.country];
    return { ...item, formattedAddress: parts.filter(Boolean).join(' ') };
  });
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
  if (identity.contact.phone) identity.contact.phone = formatPhone(identity.contact.phone);
  if (identity.contact.address) identity.contact.address = formatAddress(identity.contact.address);
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
