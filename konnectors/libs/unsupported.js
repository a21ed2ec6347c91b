/**
 * cozy-konnector-libs functions this runner does not provide yet. They exist so
 * that a konnector using one fails with a message naming it, rather than with
 * "x is not a function".
 */
import { UnsupportedError } from './exceptions.js';

function unsupported(name, hint) {
  const fn = () => {
    throw new UnsupportedError(name, hint);
  };
  Object.defineProperty(fn, 'name', { value: name });
  return fn;
}

const NO_PDF = 'the sandbox has no PDF library: save the vendor\'s own files with saveFiles';

export const linkBankOperations = unsupported('linkBankOperations', 'bank operations are not readable by konnectors in this runner');
export const mkdirp = unsupported('mkdirp', 'saveFiles creates folders as it saves files in them (see `subPath`)');
export const solveCaptcha = unsupported('solveCaptcha', 'the sandbox cannot reach captcha services');
export const htmlToPDF = unsupported('htmlToPDF', NO_PDF);
export const createCozyPDFDocument = unsupported('createCozyPDFDocument', NO_PDF);
const NO_MODEL = 'categorizing bank operations needs the Cozy\'s trained model and io.cozy.bank.operations, which konnectors here cannot read';
export const categorize = unsupported('categorize', NO_MODEL);
export const createCategorizer = unsupported('createCategorizer', NO_MODEL);
