/**
 * `cozyClient` of cozy-konnector-libs, reduced to what konnectors use without
 * a Cozy API: `cozyClient.new.models.document.Qualification`, cozy-client's
 * document qualifications (the labels of cozy-client's qualifications.json
 * that konnectors give to bills, pay sheets and other administrative papers):
 *
 * ```js
 * const { Qualification } = cozyClient.new.models.document
 * fileAttributes: { metadata: { qualification: Qualification.getByLabel('energy_invoice') } }
 * ```
 *
 * The rest of cozy-client (queries, files, the old cozy-client-js `data` and
 * `files` APIs) talks to the stack over HTTP, which a konnector cannot reach
 * here: it throws an UnsupportedError naming the member.
 */
import { UnsupportedError } from './exceptions.js';

/** From cozy-client's assets/qualifications.json. */
const QUALIFICATIONS = [
  { label: 'health_invoice', purpose: 'invoice', sourceCategory: 'health' },
  { label: 'mechanic_invoice', purpose: 'invoice', sourceCategory: 'transport' },
  { label: 'transport_invoice', purpose: 'invoice', sourceCategory: 'transport' },
  { label: 'real_estate_tax', purpose: 'invoice', sourceCategory: 'gov', sourceSubCategory: 'real_estate', subjects: ['tax', 'house'] },
  { label: 'rent_receipt', purpose: 'invoice', sourceCategory: 'real_estate', subjects: ['house'] },
  { label: 'house_insurance', purpose: 'contract', sourceCategory: 'insurance', sourceSubCategory: 'real_estate', subjects: ['insurance', 'house'] },
  { label: 'work_invoice', purpose: 'invoice', sourceCategory: 'building', subjects: ['building', 'house'] },
  { label: 'phone_invoice', purpose: 'invoice', sourceCategory: 'telecom', sourceSubCategory: 'mobile' },
  { label: 'isp_invoice', purpose: 'invoice', sourceCategory: 'telecom', sourceSubCategory: 'internet', subjects: ['subscription'] },
  { label: 'telecom_invoice', purpose: 'invoice', sourceCategory: 'telecom' },
  { label: 'energy_invoice', purpose: 'invoice', sourceCategory: 'energy' },
  { label: 'water_invoice', purpose: 'invoice', sourceCategory: 'water' },
  { label: 'energy_contract', purpose: 'contract', sourceCategory: 'energy' },
  { label: 'appliance_invoice', purpose: 'invoice', sourceCategory: 'retail' },
  { label: 'web_service_invoice', purpose: 'invoice', sourceCategory: 'web' },
  { label: 'restaurant_invoice', purpose: 'invoice', sourceCategory: 'alimentation' },
  { label: 'grocery_invoice', purpose: 'invoice', sourceCategory: 'shopping' },
  { label: 'other_invoice', purpose: 'invoice' },
  { label: 'tax_notice', purpose: 'invoice', sourceCategory: 'gov', sourceSubCategory: 'tax', subjects: ['tax'] },
  { label: 'tax_return', purpose: 'report', sourceCategory: 'gov', sourceSubCategory: 'tax', subjects: ['tax'] },
  { label: 'pay_sheet', purpose: 'attestation', sourceCategory: 'employer', subjects: ['work', 'revenues'] },
  { label: 'bank_statement', purpose: 'report', sourceCategory: 'bank', subjects: ['history'] },
  { label: 'car_insurance', purpose: 'attestation', sourceCategory: 'insurance', sourceSubCategory: 'transport', subjects: ['insurance', 'car'] },
  { label: 'national_health_insurance_right_certificate', purpose: 'attestation', sourceCategory: 'gov', sourceSubCategory: 'health', subjects: ['right', 'insurance'] },
  { label: 'receipt', purpose: 'report' },
  { label: 'other_administrative_document' },
].map((qualification) => Object.freeze(qualification));

/** cozy-client's `models.document.Qualification`, for the labels above. */
export class Qualification {
  /** @param {string} label e.g. 'energy_invoice' */
  constructor(label) {
    const found = QUALIFICATIONS.find((qualification) => qualification.label === label);
    if (!found) {
      throw new Error(`No qualification found for the label ${label} (the WebAssembly konnector runner knows ` +
        `${QUALIFICATIONS.map((qualification) => qualification.label).join(', ')})`);
    }
    Object.assign(this, structuredClone(found));
  }

  /** @param {string} label */
  static getByLabel(label) {
    return new Qualification(label);
  }

  /** The plain object stored in a file's `metadata.qualification`. */
  toQualification() {
    return structuredClone({ ...this });
  }
}

/** An object whose known members are `members`; any other one throws an UnsupportedError naming it. */
function partial(name, members, hint) {
  return new Proxy(Object.freeze(members), {
    get(target, property, receiver) {
      // Symbols and promise/JSON probes are not calls to the API.
      if (typeof property !== 'string' || property in target || property === 'then' || property === 'toJSON') {
        return Reflect.get(target, property, receiver);
      }
      throw new UnsupportedError(`${name}.${property}`, hint);
    },
  });
}

const NO_STACK = 'a konnector reaches the Cozy only through the SDK functions (saveBills, saveFiles, addData, hydrateAndFilter...)';

export const models = partial('cozyClient.new.models', { document: partial('cozyClient.new.models.document', { Qualification }, NO_STACK) }, NO_STACK);

export const cozyClient = partial('cozyClient', { new: partial('cozyClient.new', { models }, NO_STACK) }, NO_STACK);
